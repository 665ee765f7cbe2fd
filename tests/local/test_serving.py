"""A published model served as a web service (``occam.models.serve``): real HTTP requests to the real DEEPaaS
process, answers compared with Keras's ``model.predict`` in this process; the token, bad inputs, clean-up, the
path through jupyter-server-proxy, and the Swagger UI page in a real headless Chromium.

The model is a small CNN trained here for a few steps on the digits with Keras directly (no Spark needed) and
written into a temporary store with the store's own writer.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from occam.backends.driver import scoped_environ
from occam.errors import ConfigError, ServiceStartError
from occam.examples.digits import build_cnn, load_digits
from occam.models.metadata import ModelMetadata
from occam.models.serving import ModelService, serve
from occam.models.store import write_version
from tests.local import test_spark_ui_proxy
from tests.local.test_spark_ui_proxy import PREFIX, TOKEN, JupyterServer

tf = pytest.importorskip("tensorflow")

#: A real Jupyter server with jupyter-server-proxy at JupyterHub's base URL (the Spark UI proxy test's fixture).
notebook_server = test_spark_ui_proxy.jupyter

OWNER = "ada"
LABELS = [f"digit {d}" for d in range(10)]
#: Small enough that an oversized body is cheap to send.
MAX_BYTES = 256 * 1024


@dataclass
class Published:
    ref: str
    root: Path
    model: Any
    x_test: np.ndarray
    path: Path


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    root = tmp_path_factory.mktemp("models")
    with scoped_environ({"OCCAM_MODELS_DIR": str(root), "JUPYTERHUB_USER": OWNER}):
        x_train, y_train, x_test, _ = load_digits()
        tf.keras.utils.set_random_seed(0)
        model = build_cnn()
        model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
        metadata = ModelMetadata(
            name="digits-cnn",
            owner=OWNER,
            version=0,
            input_shape=[8, 8, 1],
            input_dtype="float32",
            labels=LABELS,
            metrics={"accuracy": 0.9},
            description="a test CNN",
        )
        entry = write_version(metadata, lambda path: model.save(path))
        yield Published(entry.metadata.ref, root, model, x_test, Path(entry.path))


@pytest.fixture(scope="module")
def service(published: Published) -> Iterator[ModelService]:
    with serve(published.ref, max_bytes=MAX_BYTES) as running:
        yield running


def request(
    url: str, *, token: str | None, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Status and decoded JSON body (or text) of a request."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"token {token}"
    req = urllib.request.Request(url, data=data, headers=all_headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png_of(image: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A PNG of one digit, and the pixels the service should see: its 8-bit values scaled to [0, 1]."""
    from PIL import Image

    pixels = np.round(image[..., 0] * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue(), (pixels.astype(np.float32) / 255.0)[np.newaxis, ..., np.newaxis]


def predict_json(service: ModelService, instances: Any, token: str | None = None) -> tuple[int, Any]:
    return request(
        service.predict_url,
        token=token or service.token,
        data=json.dumps({"instances": instances}).encode(),
        headers={"Content-Type": "application/json"},
    )


def test_metadata_names_the_model_its_labels_input_and_metrics(service: ModelService, published: Published) -> None:
    status, body = request(service.metadata_url, token=service.token)
    assert status == 200, body
    assert body["id"] == published.ref and body["name"] == "digits-cnn" and body["version"] == "1"
    assert body["labels"] == LABELS
    assert body["input_shape"] == [8, 8, 1] and body["input_dtype"] == "float32"
    assert body["metrics"] == {"accuracy": 0.9}
    status, spec = request(f"{service.url}/swagger.json", token=service.token)
    assert status == 200 and "/v2/models/digits-cnn/predict/" in spec["paths"], spec


def test_predictions_equal_model_predict_for_a_png_and_for_a_json_array(
    service: ModelService, published: Published
) -> None:
    png, pixels = png_of(published.x_test[0])
    body, headers = multipart("data", "digit.png", png, "image/png")
    status, answer = request(service.predict_url, token=service.token, data=body, headers=headers)
    assert status == 200, answer
    expected = published.model.predict(pixels, verbose=0)
    (prediction,) = answer["predictions"]
    assert np.allclose(prediction["probabilities"], expected[0], atol=1e-5)
    best = int(np.argmax(expected[0]))
    assert prediction["label"] == LABELS[best] and prediction["top"][0]["class"] == best
    assert len(prediction["top"]) == 5

    batch = published.x_test[:4]
    status, answer = predict_json(service, batch.tolist())
    assert status == 200, answer
    got = np.array([p["probabilities"] for p in answer["predictions"]])
    assert np.allclose(got, published.model.predict(batch, verbose=0), atol=1e-5)
    # One example without the batch dimension is a batch of one.
    status, answer = predict_json(service, batch[0].tolist())
    assert status == 200 and len(answer["predictions"]) == 1


@pytest.mark.parametrize("path", ["/v2/models/digits-cnn/", "/swagger.json", "/api", "/v2/models/digits-cnn/predict/"])
def test_every_route_wants_the_token(service: ModelService, path: str) -> None:
    data = b"{}" if path.endswith("predict/") else None
    status, body = request(service.url + path, token=None, data=data, headers={"Content-Type": "application/json"})
    assert status == 401 and "token" in body["message"], body
    status, body = request(service.url + path, token="not-the-token", data=data)
    assert status == 403, body
    # A browser without the token gets the login form, not the page.
    status, page = request(service.url + path, token=None, headers={"Accept": "text/html"})
    assert status == 401 and 'name="token"' in page and "swagger" not in page.lower()


def test_a_link_with_the_token_keeps_it_in_a_cookie_and_drops_it_from_the_address(service: ModelService) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{service.docs_url}?token={service.token}", timeout=60) as response:
        assert response.status == 200 and "token=" not in response.url, response.url
        assert "swagger-ui" in response.read().decode()
    (cookie,) = jar
    assert cookie.value == service.token and cookie.has_nonstandard_attr("HttpOnly")
    with opener.open(service.metadata_url, timeout=60) as response:
        assert json.loads(response.read())["name"] == "digits-cnn"


def test_bad_inputs_get_a_400_saying_what_is_expected_and_the_service_goes_on(
    service: ModelService, published: Published
) -> None:
    garbage, headers = multipart("data", "digit.png", os.urandom(2000), "image/png")
    status, body = request(service.predict_url, token=service.token, data=garbage, headers=headers)
    assert status == 400 and "not an image" in body["message"] and "(8, 8, 1)" in body["message"], body

    status, body = predict_json(service, [[1.0, 2.0], [3.0, 4.0]])
    assert status == 400 and "has shape (2, 2)" in body["message"] and "(n, 8, 8, 1)" in body["message"], body

    status, body = predict_json(service, [[1.0, "x"]])
    assert status == 400 and "not a rectangular array of numbers" in body["message"], body

    big, headers = multipart("data", "big.png", b"\0" * (MAX_BYTES + 1), "image/png")
    status, body = request(service.predict_url, token=service.token, data=big, headers=headers)
    assert status == 400 and f"limit of {MAX_BYTES} bytes" in body["message"], body

    status, body = request(
        service.predict_url, token=service.token, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400, body

    status, body = request(service.predict_url, token=service.token, data=b"", headers={})
    assert status == 400 and "nothing to predict" in body["message"], body

    status, body = predict_json(service, published.x_test[:1].tolist())
    assert status == 200 and service.running, body


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_stop_leaves_no_process_no_port_and_no_folder(published: Published) -> None:
    with serve(published.ref, port=0) as service:
        process = psutil.Process(service.pid)
        family = [process, *process.children(recursive=True)]
        assert len(family) >= 2, "DEEPaaS's worker process should be running the model"
        work_dir = service._work_dir
        port = service.port
        assert not _free(port)
    assert not service.running
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    assert _free(port) and not os.path.exists(work_dir)
    service.stop()  # idempotent


def test_occam_serve_runs_in_the_foreground_until_ctrl_c(published: Published) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "occam.cli", "serve", published.ref],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        fields: dict[str, str] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"occam serve ended early: {fields}"
            if line.startswith("Ctrl-C"):
                break
            key, _, value = line.strip().partition(":")
            fields[key] = value.strip()
        predict_url = fields["predict"].split()[-1]
        metadata_url = predict_url.removesuffix("predict/")
        status, body = request(metadata_url, token=fields["token"])
        assert status == 200 and body["name"] == "digits-cnn", body
        status, body = request(metadata_url, token=None)
        assert status == 401, body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert _free(int(urllib.parse.urlsplit(metadata_url).port or 0))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_killed_notebook_leaves_no_service_behind(published: Published) -> None:
    """The kernel that started the service dies by SIGKILL (no atexit): the service and its worker still end."""
    script = (
        "import json, sys, time\n"
        "from occam.models.serving import serve\n"
        f"service = serve({published.ref!r})\n"
        "print(json.dumps({'pid': service.pid, 'port': service.port, 'dir': service._work_dir}), flush=True)\n"
        "time.sleep(600)\n"
    )
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        facts = json.loads(kernel.stdout.readline())
        server = psutil.Process(facts["pid"])
        family = [server, *server.children(recursive=True)]
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=30)
        _, alive = psutil.wait_procs(family, timeout=60)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
        assert _free(facts["port"])
        deadline = time.monotonic() + 30
        while os.path.exists(facts["dir"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not os.path.exists(facts["dir"])
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()


def test_with_an_idle_limit_requests_keep_the_service_up_and_then_it_exits_by_itself(
    published: Published, tmp_path: Path
) -> None:
    """``--idle-exit 2`` (what a kept service's pod runs with, in minutes there): requests every half second
    keep it serving past the limit; with none for 2 s it stops, exit status 0, its port free."""
    token = "idle-test-token-0123456789"
    (tmp_path / "token").write_text(token)
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "occam.models.serving_app", "--model-dir", str(published.path), "--ready-file",
         str(ready), "--max-bytes", str(MAX_BYTES), "--token-file", str(tmp_path / "token"), "--idle-exit", "2"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert process.poll() is None, f"the service ended before it was ready: {process.returncode}"
            assert time.monotonic() < deadline, "timed out after 180 s waiting for the service to be ready"
            time.sleep(0.2)
        port = json.loads(ready.read_text())["port"]
        url = f"http://127.0.0.1:{port}/v2/models/digits-cnn/"
        busy_until = time.monotonic() + 5  # more than twice the limit
        while time.monotonic() < busy_until:
            status, _ = request(url, token=token if time.monotonic() % 1 < 0.5 else None)  # refused ones count
            assert status in (200, 401)
            assert process.poll() is None, "the service stopped while it had requests"
            time.sleep(0.5)
        assert process.wait(timeout=60) == 0
        assert _free(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bad_arguments_and_a_service_that_cannot_start_say_why(published: Published, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port"):
        serve(published.ref, port=70000)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        serve(published.ref, token="short")
    # A port already taken: the process exits and its log is in the message.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(
            ServiceStartError,
            match=r"(?s)exited with status 1.*cannot listen on 127.0.0.1 port \d+ \(Address already in use\)",
        ):
            serve(published.ref, port=taken.getsockname()[1], timeout=60)


def test_through_jupyter_server_proxy_behind_the_notebook_login(
    published: Published, notebook_server: JupyterServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)
    with serve(published.ref) as service:
        assert service.link == f"{PREFIX}proxy/absolute/{service.port}/api"
        assert f'href="{service.link}"' in service._repr_html_()
        url = f"{notebook_server.url}{service.base_path}/v2/models/digits-cnn/"
        # The notebook server's login (here its token, JupyterHub's in a hub) and the service's token, both.
        status, body = request(url, token=TOKEN, headers={"X-Occam-Token": service.token})
        assert status == 200 and body["labels"] == LABELS, body
        status, body = request(url, token=TOKEN)
        assert status in (401, 403), body
        status, body = request(url, token=None, headers={"X-Occam-Token": service.token})
        assert status in (401, 403) or "login" in str(body), body


def test_the_swagger_ui_page_predicts_an_uploaded_image_in_headless_chromium(
    service: ModelService, published: Published, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver (scripts/system-packages.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    png, pixels = png_of(published.x_test[1])
    image = tmp_path / "digit.png"
    image.write_bytes(png)
    expected = LABELS[int(np.argmax(published.model.predict(pixels, verbose=0)[0]))]
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'p'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        wait = WebDriverWait(browser, 60)
        # Without the token: the login form, not the page.
        browser.get(service.docs_url)
        assert browser.find_elements(By.NAME, "token") and "swagger-ui" not in browser.page_source
        browser.find_element(By.NAME, "token").send_keys(service.token)
        browser.find_element(By.ID, "login").click()
        operation = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".opblock-post .opblock-summary")))
        assert "token" not in browser.current_url
        operation.click()
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".opblock-post .try-out__btn"))).click()
        browser.find_element(By.CSS_SELECTOR, ".opblock-post input[type=file]").send_keys(str(image))
        browser.find_element(By.CSS_SELECTOR, ".opblock-post .execute").click()
        body = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-post .live-responses-table .microlight"))
        )
        wait.until(lambda _: '"label"' in body.text)
        answer = json.loads(body.text)
        assert answer["predictions"][0]["label"] == expected, answer
    finally:
        browser.quit()

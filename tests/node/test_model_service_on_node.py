"""``occam.models.serve`` on the real node: a Deployment of the notebook image serves a model published to the
shared work volume, and its ClusterIP Service (routed by kube-proxy) answers with the predictions
``model.predict`` gives; ``stop()`` leaves no pod.

The notebook here is this test process (as in tests/kubernetes/test_model_service.py), with ``OCCAM_K8S_*``
as the spawner sets them and the student's token: it trains and publishes a small model (share="course", so
the image's user may read it) into a ``hostPath`` folder standing in for the work volume, and calls
``serve``. The service's pod is real: the kubelet runs the notebook image's ``occam.models.serving_app``,
which reads the model from the volume (read-only) and its token from the Secret. The requests go from this
machine to the Service's cluster IP (kube-proxy's rules), where a notebook pod would use the Service's name.
The path through JupyterHub's proxy (jupyter-server-proxy in a spawned notebook) is
tests/node/test_hub_on_node.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.kubernetes.student import wait_until

from .driverproc import shared_folder, student_env

pytest.importorskip("tensorflow")

TOKEN = "the-node-test-token-0123456789abcdef"


def _post(url: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def _get_status(url: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_a_served_model_answers_through_its_cluster_ip_as_model_predict_does_and_stop_leaves_no_pod(
    on_real_node: Any,
    service_proxy: Any,
    kube: Any,
    admin: Any,
    namespace: Any,
    notebook: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import occam.models
    from occam.examples.digits import build_cnn, load_digits

    shared = shared_folder(tmp_path)
    env = student_env(on_real_node, namespace, notebook, shared)
    env.update(
        {
            "OCCAM_K8S_POD_IP": "127.0.0.1",
            "OCCAM_MODELS_DIR": str(shared / "models"),
            "JUPYTERHUB_USER": "ada",
            "OCCAM_SERVE_CPU": "1",
            "OCCAM_SERVE_MEMORY": "1Gi",
        }
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("JUPYTERHUB_SERVICE_PREFIX", "OCCAM_BACKEND"):
        monkeypatch.delenv(key, raising=False)

    x, y, x_test, _ = load_digits()
    model = build_cnn()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    occam.models.publish(model, "digits", labels=[str(d) for d in range(10)], share="course")
    expected = model.predict(x_test[:8], verbose=0)

    service = occam.models.serve("digits", token=TOKEN, timeout=300)
    try:
        (pod,) = admin.list_namespaced_pod(
            namespace.name, label_selector="occam.io/model-service=occam-serve-digits-v1"
        ).items
        assert pod.spec.node_name == on_real_node.name and pod.status.phase == "Running"
        assert pod.spec.containers[0].image == on_real_node.images["notebook"].ref
        assert service.url == f"http://occam-serve-digits-v1.{namespace.name}.svc:80"
        cluster_ip = admin.read_namespaced_service("occam-serve-digits-v1", namespace.name).spec.cluster_ip
        predict = service.predict_url.replace(f"occam-serve-digits-v1.{namespace.name}.svc", cluster_ip)

        # serve() checks the route from inside the cluster only; this test calls from the host, where kube-proxy
        # writes the same rules (its sync after the endpoint became ready can take a few seconds under load).
        metadata = service.metadata_url.replace(f"occam-serve-digits-v1.{namespace.name}.svc", cluster_ip)
        wait_until(f"kube-proxy to route {cluster_ip}:80 to the serving pod", lambda: _get_status(metadata) == 200)
        status, answer = _post(predict, {"instances": x_test[:8].tolist()}, TOKEN)
        assert status == 200, answer
        predictions = answer["predictions"]
        assert [int(p["label"]) for p in predictions] == expected.argmax(axis=1).tolist()
        np.testing.assert_allclose([p["probabilities"] for p in predictions], expected, rtol=1e-4, atol=1e-5)
        assert _post(predict, {"instances": x_test[:1].tolist()}, None)[0] == 401
        assert _post(predict, {"instances": x_test[:1].tolist()}, "not-the-token-of-this-service")[0] == 403
        assert _post(predict, {"instances": [[1, 2, 3]]}, TOKEN)[0] == 400  # the wrong shape: bad input
    finally:
        service.stop()
    assert not admin.list_namespaced_pod(namespace.name, label_selector="occam.io/model-service").items
    wait_until(
        "the Service to go",
        lambda: "occam-serve-digits-v1"
        not in [s.metadata.name for s in admin.list_namespaced_service(namespace.name).items],
    )

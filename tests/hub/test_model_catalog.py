"""The course catalog of shared models with a real JupyterHub: the catalog service runs as a hub-managed service
(``c.JupyterHub.services`` with its command), behind the real configurable-http-proxy, and knows who asks only
from the hub (``GET /hub/api/user`` with the caller's token).

alice, bob and carol are hub users with their own API tokens (made through the hub's REST API). alice publishes
a tiny Keras model with ``occam.models.publish(..., share=...)`` as her notebook would (her store, her token,
``OCCAM_CATALOG_URL`` pointing at the proxy's ``/services/occam-catalog/``); bob, with his own empty store and
the catalog folder as his read-only catalog, lists and loads it. bob's requests that would write under alice's
name go to the service over HTTP with his real token and are refused. No Kubernetes: the spawner is not used.
"""

from __future__ import annotations

import io
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from occam.contract import CATALOG_SERVICE_NAME
from occam.errors import CatalogError

from .hubprocess import REPO, HubProcess

tf = pytest.importorskip("tensorflow")

USERS = ("alice", "bob", "carol")


def catalog_config(catalog: Path, port: int) -> str:
    service = {
        "name": CATALOG_SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "occam.models.catalog_service", "--catalog-dir", str(catalog)],
        # A hub-managed service inherits nothing of the hub's environment but what it is given.
        "environment": {"PYTHONPATH": str(REPO), "OCCAM_CATALOG_MAX_BYTES": str(4 * 1024 * 1024)},
    }
    return f"""
# No notebook is spawned here: the catalog needs only the hub, its proxy and its users' tokens.
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.JupyterHub.services = c.JupyterHub.services + [{service!r}]
# The test's own service makes the users' tokens.
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [
    {{"name": "catalog-test-tokens", "scopes": ["tokens"], "services": ["occam-test"]}}
]
"""


@pytest.fixture(scope="module")
def hub(chp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Path, dict[str, str]]]:
    from tests.kubernetes.controlplane import free_port

    workdir = tmp_path_factory.mktemp("catalog-hub")
    catalog = workdir / "catalog"
    catalog.mkdir()
    with HubProcess(workdir, workdir / "no-kubeconfig", catalog_config(catalog, free_port()), chp=chp) as process:
        tokens = {}
        for user in USERS:
            process.api("POST", f"/users/{user}", ok=(201, 409))
            made = process.api("POST", f"/users/{user}/tokens", {"note": "catalog test", "expires_in": 3600})
            tokens[user] = made["token"]
        base = f"{process.url}/services/{CATALOG_SERVICE_NAME}/"
        process.wait_until(
            "the catalog service to answer through the proxy", lambda: call("GET", base + "api/health")[0] == 200
        )
        yield process, catalog, tokens


def call(method: str, url: str, token: str | None = None, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, {"message": body[:300].decode(errors="replace")}


@pytest.fixture
def as_user(hub: tuple[HubProcess, Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``as_user("bob")``: this process is bob's notebook from now on (his store, his token, the catalog)."""
    process, catalog, tokens = hub

    def switch(user: str) -> None:
        monkeypatch.setenv("JUPYTERHUB_USER", user)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", tokens[user])
        monkeypatch.setenv("OCCAM_MODELS_DIR", str(tmp_path / f"{user}-store"))
        monkeypatch.setenv("OCCAM_CATALOG_URL", f"{process.url}/services/{CATALOG_SERVICE_NAME}/")
        monkeypatch.setenv("OCCAM_CATALOG_DIR", str(catalog))

    return switch


def tiny_model() -> Any:
    inputs = tf.keras.Input(shape=(4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_a_model_shared_with_the_course_is_loaded_by_another_student_and_only_its_owner_writes_it(
    hub: tuple[HubProcess, Path, dict[str, str]], as_user: Any, tmp_path: Path
) -> None:
    import occam
    from occam.models import catalog as catalog_files

    process, catalog, tokens = hub
    base = f"{process.url}/services/{CATALOG_SERVICE_NAME}/api/models/"
    model = tiny_model()
    x = tf.random.stateless_uniform((5, 4), seed=(1, 2)).numpy()

    as_user("alice")
    published = occam.models.publish(model, "tiny", share="course", description="shared")
    assert published.ref == "alice/tiny:1"
    assert (catalog / "alice" / "tiny" / "1" / "model.keras").is_file()

    as_user("bob")
    assert [m.ref for m in occam.models.list()] == ["alice/tiny:1"]
    loaded = occam.models.load("alice/tiny")
    assert (loaded.predict(x, verbose=0) == model.predict(x, verbose=0)).all()

    # bob writes nothing of alice's, whatever he sends: the hub says he is bob.
    archive = catalog_files.pack_version(catalog / "alice" / "tiny" / "1")
    status, reply = call("PUT", base + "alice/tiny/2", tokens["bob"], archive)
    assert status == 403 and "you are bob" in reply["message"], reply
    status, reply = call("PUT", base + "alice/tiny/1", tokens["bob"], archive)
    assert status == 403, reply
    status, reply = call("DELETE", base + "alice/tiny/1", tokens["bob"])
    assert status == 403 and "only its owner" in reply["message"], reply
    status, reply = call("PUT", base + "bob/tiny/1", tokens["bob"], archive)  # alice's version as his own
    assert status == 403 and "describes alice/tiny:1" in reply["message"], reply
    with pytest.raises(occam.ModelPermissionError, match="only its owner"):
        occam.models.remove("alice/tiny:1")
    # not even alice replaces a version: versions never change
    status, reply = call("PUT", base + "alice/tiny/1", tokens["alice"], archive)
    assert status == 409 and "already in the course catalog" in reply["message"], reply
    # no token, or one the hub does not know: 401, and nothing is read
    assert call("PUT", base + "alice/tiny/3", None, archive)[0] == 401
    status, reply = call("DELETE", base + "alice/tiny/1", "not-a-token")
    assert status == 401 and "does not accept this token" in reply["message"], reply
    status, reply = call("DELETE", base + "alice/tiny/1", process.token)  # a service's token, even an admin one
    assert status == 401 and "not a user's" in reply["message"], reply
    # the catalog's copy is still alice's own, byte for byte
    own = tmp_path / "alice-store" / "alice" / "tiny" / "1" / "model.keras"
    assert (catalog / "alice" / "tiny" / "1" / "model.keras").read_bytes() == own.read_bytes()
    assert sorted(os.listdir(catalog)) == ["alice", "bob"] and os.listdir(catalog / "bob" / "tiny") == []

    # the owner removes it: from her store and from the catalog
    as_user("alice")
    assert [m.ref for m in occam.models.remove("tiny:1")] == ["alice/tiny:1"]
    assert not (catalog / "alice" / "tiny").exists()
    as_user("bob")
    assert occam.models.list() == []
    # the service's log (in the hub's: a hub-managed service's output) names users, never their tokens
    log = process.log("jupyterhub").read_text()
    assert "bob added" not in log and "alice added alice/tiny:1" in log and "refused bob's upload" in log
    assert not [user for user, token in tokens.items() if token in log]


def test_a_model_shared_with_named_users_is_seen_by_them_only(
    hub: tuple[HubProcess, Path, dict[str, str]], as_user: Any
) -> None:
    import occam

    as_user("alice")
    occam.models.publish(tiny_model(), "for-carol", share=["carol"])
    as_user("bob")
    assert "alice/for-carol:1" not in [m.ref for m in occam.models.list()]
    with pytest.raises(occam.ModelNotFoundError, match="not shared with you"):
        occam.models.load("alice/for-carol")
    as_user("carol")
    assert "alice/for-carol:1" in [m.ref for m in occam.models.list()]
    assert occam.models.load("alice/for-carol:1").input_shape == (None, 4)
    as_user("alice")
    occam.models.remove("for-carol")


def test_a_share_the_catalog_refuses_is_not_published(
    hub: tuple[HubProcess, Path, dict[str, str]], as_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or nothing: with a token the hub does not know, publish raises and leaves no version behind."""
    import occam

    as_user("bob")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "expired-or-made-up")
    with pytest.raises(occam.ModelPermissionError, match="does not accept this token") as refused:
        occam.models.publish(tiny_model(), "mine", share="course")
    assert "expired-or-made-up" not in str(refused.value)
    assert occam.models.list() == []
    monkeypatch.setenv("OCCAM_CATALOG_URL", "http://127.0.0.1:9/services/occam-catalog/")
    with pytest.raises(CatalogError, match="did not answer"):
        occam.models.publish(tiny_model(), "mine", share="course")
    assert occam.models.list() == []
    # a private publish never asks the catalog
    assert occam.models.publish(tiny_model(), "mine").ref == "bob/mine:1"


def test_an_upload_over_the_cap_is_refused_before_it_is_stored(
    hub: tuple[HubProcess, Path, dict[str, str]], as_user: Any
) -> None:
    process, catalog, tokens = hub
    url = f"{process.url}/services/{CATALOG_SERVICE_NAME}/api/models/alice/big/1"
    status, reply = call("PUT", url, tokens["alice"], io.BytesIO(b"\0" * (5 * 1024 * 1024)).getvalue())
    assert status == 413 and "limit" in reply["message"], reply
    assert not (catalog / "alice" / "big").exists()

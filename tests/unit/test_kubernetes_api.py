"""occam.kubernetes.api.call: one request with a timeout; what a person must fix becomes a ConfigError."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from occam.errors import ConfigError
from occam.kubernetes.api import api_message, call

API_CLIENT = SimpleNamespace(configuration=SimpleNamespace(host="https://k8s.test:6443"))
HOW = {"who": "this notebook", "refused": "ask your admin", "unreachable": "Check the cluster"}


def _raising(exc: Exception) -> Any:
    def method(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return method


def _api_exception(status: int, reason: str, message: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_the_call_gets_its_arguments_and_the_timeout():
    seen: list[Any] = []

    def method(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return "result"

    assert call(API_CLIENT, "list pods", method, "ns", timeout=3, label_selector="a=b", **HOW) == "result"
    assert seen == [(("ns",), {"_request_timeout": 3, "label_selector": "a=b"})]


@pytest.mark.parametrize("status,reason", [(403, "Forbidden"), (401, "Unauthorized")])
def test_a_refusal_names_who_what_and_the_fix(status: int, reason: str):
    refused = _raising(_api_exception(status, reason, 'pods is forbidden: User "x" cannot list'))
    with pytest.raises(ConfigError) as failed:
        call(API_CLIENT, "list pods", refused, **HOW)
    assert str(failed.value) == (
        f"Kubernetes refused to let this notebook list pods ({status} {reason}): ask your admin. "
        'The API server said: pods is forbidden: User "x" cannot list'
    )


def test_an_invalid_object_gives_the_api_server_s_reason():
    invalid = _raising(_api_exception(422, "Unprocessable Entity", "spec.hard: Invalid value"))
    with pytest.raises(ConfigError, match=r"rejected the object when asked to create a Secret: spec.hard: Invalid"):
        call(API_CLIENT, "create a Secret", invalid, **HOW)


def test_an_unreachable_api_server_names_its_address_and_the_fix():
    unreachable = _raising(MaxRetryError(None, "/api/v1/pods", "Connection refused"))  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"cannot reach the Kubernetes API at https://k8s.test:6443 to list pods: .*Check the cluster"
    ):
        call(API_CLIENT, "list pods", unreachable, **HOW)


def test_other_errors_are_the_caller_s():
    with pytest.raises(ApiException) as failed:
        call(API_CLIENT, "read a pod", _raising(_api_exception(404, "Not Found", "pods x not found")), **HOW)
    assert failed.value.status == 404


def test_api_message_falls_back_to_the_body_or_the_reason():
    assert api_message(_api_exception(409, "Conflict", "already exists")) == "already exists"
    plain = ApiException(status=500, reason="Internal Server Error")
    plain.body = "not json"
    assert api_message(plain) == "not json"
    assert api_message(ApiException(status=500, reason="Internal Server Error")) == "Internal Server Error"

import dataclasses

import pytest

from occam import config
from occam.errors import ConfigError


def test_defaults_then_environment_then_arguments():
    assert config.get("cores", environ={}) == 1
    assert config.get("cores", environ={"OCCAM_CORES": "3"}) == 3
    assert config.get("cores", 2, environ={"OCCAM_CORES": "3"}) == 2


def test_empty_environment_value_means_default():
    assert config.get("backend", environ={"OCCAM_BACKEND": ""}) == "auto"


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="OCCAM_TIMEOUT='soon'"):
        config.get("timeout", environ={"OCCAM_TIMEOUT": "soon"})


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(KeyError, match="known settings"):
        config.get("colour")


def test_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OCCAM_CACHE_DIR", raising=False)
    assert config.path("cache_dir") == str(tmp_path / ".cache" / "occam")


def test_one_layer_for_occam_and_kubernetes_settings_alike():
    from occam import config

    env = {"OCCAM_K8S_IMAGE_PULL_POLICY": "Always", "OCCAM_CORES": "3"}
    assert config.get("kubernetes.image_pull_policy", environ={}) == "IfNotPresent"  # the package default
    assert config.get("kubernetes.image_pull_policy", environ=env) == "Always"  # the environment over it
    assert config.get("kubernetes.image_pull_policy", "Never", environ=env) == "Never"  # an argument over both
    assert config.get("cores", environ=env) == 3
    assert config.get("n", environ={}) == 2, "start_cluster's n has its default here too"


def test_the_spawners_variables_are_the_config_keys_variables():
    """The contract's names (what the spawner sets) and occam.config's rule for each key agree."""
    from occam import config, contract
    from occam.kubernetes.settings import ENV_VARS, KubernetesSettings

    assert config.env_key("kubernetes.namespace") == contract.NAMESPACE_ENV
    assert config.env_key("kubernetes.shared_path") == contract.SHARED_PATH_ENV
    assert config.env_key("backend") == contract.BACKEND_ENV
    assert config.env_key("cache_dir") == contract.CACHE_DIR_ENV
    spawner_sets = {
        v for k, v in vars(contract).items() if k.endswith("_ENV") and v.startswith(contract.K8S_ENV_PREFIX)
    }
    assert spawner_sets - set(ENV_VARS.values()) == {contract.DRIVER_SERVICE_ACCOUNT_ENV}  # occam submit reads that one
    defaults = {f.name: f.default for f in dataclasses.fields(KubernetesSettings)}
    assert defaults["image_pull_policy"] == config.DEFAULTS["kubernetes.image_pull_policy"]
    assert defaults["api_server"] == config.DEFAULTS["kubernetes.api_server"]

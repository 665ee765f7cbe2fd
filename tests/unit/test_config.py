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

import pytest

from occam.errors import ConfigError
from occam.spec import format_memory, parse_memory
from tests.unit import factories

spec = factories.spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1g", 1 << 30),
        ("512m", 512 << 20),
        ("1536M", 1536 << 20),
        ("2Gi", 2 << 30),
        ("1.5g", 3 << 29),
        (1 << 30, 1 << 30),
    ],
)
def test_parse_memory_accepts_spark_and_kubernetes_notation(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "1x", "", True, "-1g"])
def test_parse_memory_rejects_garbage_with_an_example(bad):
    with pytest.raises(ConfigError, match="'1g'"):
        parse_memory(bad)


def test_parse_memory_rejects_too_little_for_an_executor():
    with pytest.raises(ConfigError, match="at least '512m'"):
        parse_memory("100m")


def test_format_memory_round_trips_for_spark():
    assert format_memory(2 << 30) == "2g"
    assert format_memory(1536 << 20) == "1536m"


@pytest.mark.parametrize("n", [0, -3])
def test_n_below_one_is_refused_with_the_fix(n):
    with pytest.raises(ConfigError, match=r"at least one executor; use start_cluster\(n=1\)"):
        spec(n)


@pytest.mark.parametrize("n", ["2", 2.0, True, None])
def test_n_must_be_a_whole_number(n):
    with pytest.raises(ConfigError, match="whole number"):
        spec(n)


def test_cores_and_timeout_are_checked():
    with pytest.raises(ConfigError, match="cores=0"):
        spec(cores=0)
    with pytest.raises(ConfigError, match="timeout=-1"):
        spec(timeout=-1)


def test_a_valid_request_gets_a_unique_name():
    a, b = spec(), spec()
    assert a.name.startswith("occam-") and a.name != b.name
    assert a.memory == "1g" and a.n == 2

"""Resizing a running embedded cluster, and finding this notebook's clusters again."""

from __future__ import annotations

import pytest

import occam
from occam import ConfigError


def test_scale_down_and_back_up(cluster):
    cluster.scale(1, progress=False)
    assert cluster.executor_count() == 1 and cluster.n == 1
    assert cluster.sc.parallelize(range(100), 4).sum() == 4950
    cluster.scale(2, progress=False)
    assert cluster.executor_count() == 2 and cluster.n == 2


def test_embedded_cannot_grow_past_its_start_size(cluster):
    with pytest.raises(ConfigError, match=r"started with 2 executor slots.*start_cluster\(n=3\)"):
        cluster.scale(3)
    with pytest.raises(ConfigError, match="at least 1"):
        cluster.scale(0)
    assert cluster.executor_count() == 2


def test_list_and_connect(cluster):
    assert cluster in occam.list_clusters()
    assert occam.connect(cluster.name) is cluster
    with pytest.raises(ConfigError, match=rf"no running cluster named 'nope'.*running: {cluster.name}"):
        occam.connect("nope")

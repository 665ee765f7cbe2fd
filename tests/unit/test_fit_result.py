"""A finished fit draws its curves: ``FitResult.plot()`` (a matplotlib figure) and ``_repr_html_`` (inline SVG)."""

from __future__ import annotations

import math

import pytest

from occam.training.result import FitResult, metric_panels

pytest.importorskip("matplotlib")


def result(history: dict[str, list[float]]) -> FitResult:
    return FitResult(
        model=None,
        history=history,
        epochs=[1, 2, 3],
        ranks=2,
        seconds=9.0,
        samples_per_second=321.0,
        checkpoint=None,
    )


HISTORY = {
    "loss": [1.0, 0.6, 0.4],
    "accuracy": [0.5, 0.7, 0.8],
    "val_loss": [1.1, 0.7, 0.5],
    "val_accuracy": [0.4, 0.6, 0.75],
}


def test_plot_draws_one_panel_per_metric_with_train_and_validation():
    figure = result(HISTORY).plot()
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["train", "validation"]
    assert list(axes[1].get_lines()[1].get_ydata()) == [0.4, 0.6, 0.75]


def test_the_html_holds_the_curves_and_the_table_with_names_escaped():
    page = result({**HISTORY, "<i>x</i>": [1.0, math.nan, 2.0]})._repr_html_()
    assert page.count("<svg") == 1 and "<?xml" not in page
    assert "&lt;i&gt;x&lt;/i&gt;" in page and "<i>x</i>" not in page
    assert "<td>nan</td>" in page and "321 samples/s" in page


def test_loss_comes_first_and_val_metrics_share_their_panel():
    assert metric_panels({"accuracy": [], "val_loss": [], "loss": []}) == ["loss", "accuracy"]
    assert result({}).plot().get_axes()[0].get_title() == "no metrics recorded"

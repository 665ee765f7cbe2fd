"""fit's live dashboard in a real notebook kernel (nbclient): a widget where the kernel has comms and ipywidgets,
an HTML display updated in place where it is asked for, and the finished result's curves.

What a browser would receive is what the kernel sends on its IOPub channel: the test records those messages
as nbclient processes them (comm updates of the widget's ``value``, ``update_display_data`` of the display).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

CELLS = [
    """\
from occam import Dataset, start_cluster
from occam.examples.digits import build_cnn, load_digits

cluster = start_cluster(n=2)
x_train, y_train, x_test, y_test = load_digits()
train = Dataset.from_numpy(x_train, y_train)
test = Dataset.from_numpy(x_test, y_test)""",
    "result = cluster.fit(build_cnn, train, validation=test, epochs=2, batch_size=16)",
    """\
import os

os.environ["OCCAM_DASHBOARD"] = "html"
html_result = cluster.fit(build_cnn, train, validation=test, epochs=2, batch_size=16)
del os.environ["OCCAM_DASHBOARD"]""",
    "result",
    "result.plot()",
    "cluster.stop()",
]
FIT_WIDGET, FIT_HTML, RESULT, PLOT = 1, 2, 3, 4


class RecordingClient(NotebookClient):
    """nbclient, keeping every IOPub message it processes, by cell."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[tuple[int, dict[str, Any]]] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.append((cell_index, msg))
        return super().process_message(msg, cell, cell_index)


def widget_values(client: RecordingClient, cell: int) -> list[str]:
    """The HTML values the widget was given, in order, by the comm updates of ``cell``."""
    return [
        m["content"]["data"]["state"]["value"]
        for index, m in client.messages
        if index == cell
        and m["msg_type"] == "comm_msg"
        and m["content"]["data"].get("method") == "update"
        and "value" in m["content"]["data"].get("state", {})
    ]


def display_updates(client: RecordingClient, cell: int) -> list[str]:
    return [
        m["content"]["data"]["text/html"]
        for index, m in client.messages
        if index == cell and m["msg_type"] == "update_display_data"
    ]


def test_the_dashboard_updates_while_fit_runs_and_the_result_draws_its_curves(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    client = RecordingClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    values = widget_values(client, FIT_WIDGET)
    during = [v for v in values if "<b>training</b>" in v]
    assert len(during) >= 2, f"{len(values)} widget updates, {len(during)} during training"
    assert "samples/s" in during[-1] and "<svg" in during[-1] and "<td>1</td>" in during[-1]  # rank 1's row
    assert "<b>done</b>" in values[-1] and "epoch 2/2" in values[-1]
    widget_outputs = [
        o for o in notebook.cells[FIT_WIDGET].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widget_outputs) == 1  # one output area, updated in place

    updates = display_updates(client, FIT_HTML)
    assert sum("<b>training</b>" in u for u in updates) >= 2 and "<b>done</b>" in updates[-1]
    (shown,) = [o for o in notebook.cells[FIT_HTML].outputs if o.output_type == "display_data"]
    assert "<b>done</b>" in shown["data"]["text/html"]  # the display holds its last state

    (page,) = [o["data"]["text/html"] for o in notebook.cells[RESULT].outputs if "text/html" in o.get("data", {})]
    assert "<svg" in page and "val_accuracy" in page
    assert any("image/png" in o.get("data", {}) for o in notebook.cells[PLOT].outputs)

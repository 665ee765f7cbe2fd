"""docs/tutorial-scaling.ipynb runs top to bottom in a real kernel: occam.scaling starts a cluster per
configuration on the embedded backend, the CPU rows run, the GPU rows are skipped with the reason where
there is no GPU, and the table holds what the notebook tells students to read."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_the_scaling_notebook_runs_and_fills_its_table(tmp_path: Path) -> None:
    notebook = nbformat.read(ROOT / "docs" / "tutorial-scaling.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    with open(tmp_path / "scaling.csv") as fh:
        rows = list(csv.DictReader(fh))
    print("\n".join(",".join(row.values()) for row in rows))  # the figures docs/benchmarks.md records
    cpu = [row for row in rows if row["gpu"] == "False"]
    assert [row["executors"] for row in cpu] == ["1", "2"]
    assert float(cpu[0]["speedup"]) == 1.0 and float(cpu[0]["efficiency"]) == 1.0
    for row in cpu:
        assert float(row["samples/s"]) > 0
        step, exchange, compute = (float(row[k]) for k in ("step (ms)", "exchange (ms)", "compute (ms)"))
        assert step > 0 and float(row["input (ms)"]) > 0 and abs(compute - max(0.0, step - exchange)) < 0.05
    assert float(cpu[0]["exchange (ms)"]) == 0.0 < float(cpu[1]["exchange (ms)"])  # one rank exchanges nothing
    pages = "".join(
        o["data"]["text/html"] for c in notebook.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    )
    assert "<svg" in pages and "samples/s" in pages
    if shutil.which("nvidia-smi") is None:
        assert "Skipped" in pages and "no GPU" in pages
    assert any("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))

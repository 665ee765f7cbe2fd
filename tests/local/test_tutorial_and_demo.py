"""The student tutorial runs top to bottom in a real kernel, and ``occam demo`` (the README's main job) works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_tutorial_notebook_runs_and_learns(tmp_path):
    notebook = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = {
        index: "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", [])
        )
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }
    text = "\n".join(outputs.values())
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", text).group(1))
    assert accuracy >= 0.9
    assert "<Cluster occam-" in text and "stopped" in text
    html = [
        o["data"]["text/html"] for c in notebook.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    ]
    assert any("Spark UI" in page for page in html)
    assert any(o.get("data", {}).get("image/png") for c in notebook.cells for o in c.get("outputs", []))


def test_image_tutorial_notebook_runs_from_a_folder_of_images_to_predictions(tmp_path):
    notebook = nbformat.read(ROOT / "docs" / "tutorial-images.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "1200 PNG files" in text and "classes ('circle', 'square', 'triangle')" in text
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", text).group(1))
    assert accuracy >= 0.8, text[-3000:]
    assert re.search(r"predicted classes of the first 8: \[('(circle|square|triangle)', ){7}'", text)
    assert "|row|prediction" in text.replace(" ", "")
    assert any(o.get("data", {}).get("image/png") for c in notebook.cells for o in c.get("outputs", []))


def test_occam_demo_reaches_90_percent():
    out = subprocess.run(
        [sys.executable, "-m", "occam.cli", "demo", "--epochs", "8", "--min-accuracy", "0.9", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 8 and "val_accuracy=" in epoch_lines[-1]
    assert re.search(r"held-out accuracy: 0\.9[0-9]*|held-out accuracy: 1\.0", out.stdout)

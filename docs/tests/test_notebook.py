"""The example notebook of the user guide runs from top to bottom in a real
Jupyter kernel, its live plots included (matplotlib's Agg backend), and
reaches the simulator's ground truth."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "guide" / "live_plots.ipynb"


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_live_plots_notebook_executes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        assert not cell.get("outputs"), "keep the notebook in the repository without outputs"
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors, errors
    text = _text_outputs(nb)
    assert "sum equals the simulator's ground truth: True" in text, text
    assert "missing=0" in text, text
    assert "2 live plots" in text, text  # plots=True drew one figure per result

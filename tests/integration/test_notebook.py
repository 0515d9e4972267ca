"""notebooks/01_score_and_inspect.ipynb runs top to bottom against small demo data (nbclient + ipykernel)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "01_score_and_inspect.ipynb"
pytestmark = pytest.mark.slow


def _kernel_spec(tmp_path) -> str:
    """A kernel spec for this interpreter (the project venv), found through JUPYTER_PATH."""
    name = "batchinfer-venv"
    spec = tmp_path / "jupyter" / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "batchinfer (venv)",
                "language": "python",
            }
        )
    )
    return name


def test_notebook_executes(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("BATCHINFER_NOTEBOOK_DIR", str(tmp_path / "demo"))
    monkeypatch.setenv("BATCHINFER_NOTEBOOK_ROWS", "12000")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name=_kernel_spec(tmp_path),
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # a failing cell raises CellExecutionError with the cell's traceback

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("batchinfer · churn-demo" in h and "dry_run" in h for h in html), "JobResult did not render"
    # The inline run report (the same page as report.html): checks, drift table and overlays, workers.
    report = next(h for h in html if h.startswith('<div class="bi-report">'))
    for part in ('id="bi-quality"', 'id="bi-drift"', 'id="bi-workers"', 'aria-label="seconds per stage"'):
        assert part in report, f"inline report lacks {part}"
    assert report.count('<figure class="bi-overlay">') >= 2 and "data:image/svg+xml;base64," in report
    assert any("churn_score" in h for h in html), "scored rows not shown"
    assert not (tmp_path / "demo" / "output").exists()  # a dry run writes nothing
    # The embedded engine by default, and the switch to a cluster is shown (criterion 6).
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "ran on: local" in text and "engine: local" in text, text[-2000:]
    assert "spark.master=yarn" in text and "-> spark" in text and "-> spark-connect" in text
    # conf/demo.yaml configures checks and a drift reference: the table and the plots are shown.
    assert any("unexpected_percent" in h and "severity" in h for h in html), "checks table not shown"
    assert any("image/png" in o.get("data", {}) for o in outputs), "drift plots not shown"

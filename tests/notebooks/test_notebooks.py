"""The analyst notebooks run top to bottom against the test district, and tell the truth.

Each notebook is executed with nbclient on the venv's own Python kernel (ipykernel's
``python3`` spec, which jupyter_client starts with ``sys.executable``), reading the platform
from ``SIBIAO_API_URL``. Its last cell (tagged ``summary``) prints its key figures as JSON;
they are checked here against direct SQL on the same database.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from notebook_support import END, UPLOAD_LAYER, NotebookDistrict

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SHELTER_M, STOCKPILE_M = 1000.0, 2000.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run(name: str, server: str, district: NotebookDistrict, **env: str) -> dict[str, Any]:
    """Execute a notebook; save the executed copy as an artifact; return its summary."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    saved = dict(os.environ)
    os.environ.update(
        {
            "SIBIAO_API_URL": server,
            "SIBIAO_NOTEBOOK_DISTRICT": str(district.folder),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            # ipykernel's spec in the venv first (its "python" starts as sys.executable)
            "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
            **env,
        }
    )
    os.environ.pop("SIBIAO_API_TOKEN", None)
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
        # "python" is started as sys.executable by jupyter_client: the venv's own Python.
        assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv
        client = NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, ARTIFACTS / name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no chart or map"
    (summary_cell,) = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    text = "".join(o.get("text", "") for o in summary_cell.outputs if o.output_type == "stream")
    return dict(json.loads(text))


def test_upload_notebook_accounts_for_every_row(notebook_server, notebook_district):
    summary = run("01_upload_layer.ipynb", notebook_server, notebook_district)
    assert summary["layer"] == UPLOAD_LAYER and summary["state"] == "committed"
    assert summary["read"] == summary["loaded"] + summary["rejected"] and summary["accounted"]
    assert summary["rejected"] >= summary["recorded_defects"] >= 2
    assert summary["recorded_defects_rejected"] == summary["recorded_defects"]
    assert 0 < summary["rejects_on_map"] <= summary["rejected"]
    stored = notebook_district.scalar(f'SELECT count(*) FROM layers."{UPLOAD_LAYER}"')
    assert stored == summary["loaded"]
    batch = notebook_district.rows(
        "SELECT read_count, loaded_count, rejected_count FROM load_batches WHERE id = :id",
        id=summary["load_id"],
    )
    assert batch == [(summary["read"], summary["loaded"], summary["rejected"])]


GAPS_SQL = """
    SELECT count(*), coalesce(sum(c.population), 0) FROM layers.grid_cell c
    WHERE NOT EXISTS (
        SELECT 1 FROM layers.{layer} f
        WHERE ST_DWithin(f.geom::geography, ST_Centroid(c.geom)::geography, :d))"""


def test_coverage_notebook_gaps_match_sql(notebook_server, notebook_district):
    summary = run("02_emergency_coverage.ipynb", notebook_server, notebook_district)
    cells = notebook_district.scalar("SELECT count(*) FROM layers.grid_cell")
    assert summary["cells"] == summary["shelter"]["cells"] == cells
    for key, layer, metres in (
        ("shelter", "emergency_shelter", SHELTER_M),
        ("stockpile", "emergency_stockpile", STOCKPILE_M),
    ):
        ((count, people),) = notebook_district.rows(GAPS_SQL.format(layer=layer), d=metres)
        assert summary[key]["uncovered_cells"] == count, key
        assert summary[key]["uncovered_population"] == people, key
    ((both,),) = notebook_district.rows(
        f"""SELECT count(*) FROM layers.grid_cell c WHERE NOT EXISTS (
            SELECT 1 FROM layers.emergency_shelter f
            WHERE ST_DWithin(f.geom::geography, ST_Centroid(c.geom)::geography, {SHELTER_M}))
          AND NOT EXISTS (SELECT 1 FROM layers.emergency_stockpile f
            WHERE ST_DWithin(f.geom::geography, ST_Centroid(c.geom)::geography, {STOCKPILE_M}))"""
    )
    assert summary["both"] == both
    assert 0 < summary["shelter"]["uncovered_cells"] < cells  # the story has gaps to tell


def test_hotspot_notebook_top_cell_matches_sql(notebook_server, notebook_district):
    summary = run("03_case_hotspots.ipynb", notebook_server, notebook_district)
    window = {"start": "2026-01-01T00:00:00+08:00", "end": END.isoformat()}
    total = notebook_district.scalar(
        "SELECT count(*) FROM cases WHERE received_at >= :start AND received_at < :end", **window
    )
    assert summary["cases"] == total == notebook_district.cases
    ((cell, count),) = notebook_district.rows(
        """SELECT grid_code, count(*) FROM cases
           WHERE received_at >= :start AND received_at < :end AND grid_code IS NOT NULL
           GROUP BY grid_code ORDER BY count(*) DESC, grid_code LIMIT 1""",
        **window,
    )
    assert (summary["top_cell"], summary["top_cell_cases"]) == (cell, count)
    ((category,),) = notebook_district.rows(
        """SELECT category FROM cases WHERE received_at >= :start AND received_at < :end
           GROUP BY category ORDER BY count(*) DESC, category LIMIT 1""",
        **window,
    )
    assert summary["top_category"] == category
    assert summary["months"] == [f"2026-{m:02d}" for m in range(1, 7)]

"""The next version's table: built beside the live one, swept when a dead load left it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from ingest import target
from schemas.errors import InvalidInput

if TYPE_CHECKING:
    from conftest import Ingest, Maker

LAYER = "street_lamp"
NAMES = {"code": "部件编码", "state": "部件状态", "maintenance_unit": "养护单位"}


def _file(make: Maker, path: Path, n: int, seed: int) -> Path:
    keep = ("code", "state", "maintenance_unit", "lon", "lat")
    rows: list[dict[str, Any]] = [{k: r[k] for k in keep} for r in make.lamps(n, seed=seed)]
    make.frame(rows, NAMES).to_file(path, driver="GPKG")
    return path


def _side_tables(ingest: Ingest) -> list[str]:
    with ingest.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'layers' "
                    "AND tablename LIKE :p ORDER BY 1"
                ),
                {"p": f"{LAYER}\\_\\_b%"},
            ).scalars()
        )


def test_a_table_left_by_a_dead_load_is_dropped_by_the_next_load(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    """A load killed after committing its new table leaves the live layer as it was."""
    first = ingest.load(_file(make, tmp_path / "a.gpkg", 15, seed=201), LAYER)
    before = ingest.snapshot(LAYER)
    with ingest.engine.begin() as conn:  # what a load killed before its swap leaves
        conn.execute(
            text(f'CREATE TABLE layers."{LAYER}__b999999" (LIKE layers."{LAYER}" INCLUDING ALL)')
        )
        conn.execute(text(f'INSERT INTO layers."{LAYER}__b999999" SELECT * FROM layers."{LAYER}"'))
    assert _side_tables(ingest) == [f"{LAYER}__b999999"]
    assert ingest.snapshot(LAYER) == before  # readers see the live version only

    second = ingest.load(_file(make, tmp_path / "b.gpkg", 9, seed=202), LAYER)
    assert second.version == first.version + 1 and second.loaded == 9
    assert _side_tables(ingest) == []
    assert len(ingest.rows(LAYER)) == 9


@pytest.fixture(params=["in the load's transaction", "on the side"])
def side_build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Build the new table in the main transaction, or (as for big files) on the side."""
    side = request.param == "on the side"
    if side:
        monkeypatch.setattr(target, "SIDE_BUILD_ROWS", 1)
    return side


def test_replace_gives_row_numbers_as_feature_ids_and_keeps_the_indexes(
    ingest: Ingest, make: Maker, tmp_path: Path, side_build: bool
) -> None:
    """Each index of the live table is there after a replace, under its usual name."""
    path = _file(make, tmp_path / "c.gpkg", 20, seed=203)
    result = ingest.load(path, LAYER)
    rows = ingest.rows(LAYER)
    assert sorted(r["fid"] for r in rows.values()) == list(range(1, 21))
    with ingest.engine.connect() as conn:
        indexes = dict(
            conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = 'layers' AND tablename = :t"
                ),
                {"t": LAYER},
            ).all()
        )
        constraints = set(
            conn.execute(
                text(
                    "SELECT conname || ':' || contype::text FROM pg_constraint "
                    "WHERE conrelid = 'layers.street_lamp'::regclass AND contype IN ('p', 'u')"
                )
            ).scalars()
        )
        versions = conn.execute(
            text("SELECT feature_count FROM layer_versions WHERE layer_code = :c AND version = :v"),
            {"c": LAYER, "v": result.version},
        ).scalar_one()
        digest = conn.execute(
            text("SELECT sha256 FROM load_batches WHERE id = :b"), {"b": result.batch_id}
        ).scalar_one()
        next_fid = conn.execute(
            text(
                f"INSERT INTO layers.{LAYER} (code, state, maintenance_unit, geom, district_code)"
                " SELECT '4401140199999999', state, maintenance_unit, geom, district_code "
                f"FROM layers.{LAYER} LIMIT 1 RETURNING fid"
            )
        ).scalar_one()
        conn.rollback()
    assert set(indexes) == {
        f"pk_{LAYER}",
        f"uq_{LAYER}_natural_key",
        f"idx_{LAYER}_geom",
    }
    assert "gist (geom)" in indexes[f"idx_{LAYER}_geom"]
    assert constraints == {f"pk_{LAYER}:p", f"uq_{LAYER}_natural_key:u"}
    assert versions == 20
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()  # hashed beside the load
    assert next_fid == 21  # the fid sequence continues after the loaded rows


def test_repeated_keys_are_rejected_and_failed_loads_leave_no_table(
    ingest: Ingest, make: Maker, tmp_path: Path, side_build: bool
) -> None:
    """The natural-key index fails on repeats: they are then found, rejected and reported."""
    keep = ("code", "state", "maintenance_unit", "lon", "lat")
    rows: list[dict[str, Any]] = [{k: r[k] for k in keep} for r in make.lamps(12, seed=204)]
    rows[7]["code"] = rows[2]["code"]
    rows[10]["code"] = rows[2]["code"]
    path = tmp_path / "d.gpkg"
    make.frame(rows, NAMES).to_file(path, driver="GPKG")
    result = ingest.load(path, LAYER)
    assert (result.read, result.loaded, result.rejected) == (12, 10, 2)
    report = ingest.rejects(result.batch_id)
    assert sorted(report) == [8, 11]
    assert all("same as row 3" in line["reason"] for line in report.values())
    table = ingest.rows(LAYER)
    assert len(table) == 10 and table[rows[2]["code"]]["fid"] == 3
    assert _side_tables(ingest) == []

    before = ingest.snapshot(LAYER)
    for row in rows:
        row["state"] = "不详"  # not one of the states: every row rejected
    bad = tmp_path / "e.gpkg"
    make.frame(rows, NAMES).to_file(bad, driver="GPKG")
    with pytest.raises(InvalidInput, match="none of its 12 rows could be loaded"):
        ingest.load(bad, LAYER)
    assert ingest.snapshot(LAYER) == before
    assert _side_tables(ingest) == []

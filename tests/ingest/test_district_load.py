"""A whole generated district through ingest: every file loads, exactly its defects are caught."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import text

from cases.district_inputs import asset_layer_codes
from ingest.district import load_district
from layers.registry import load_catalog
from layers.synthetic.generate import generate
from layers.synthetic.manifest import DefectKind, read_manifest
from schemas.catalog import Catalog

CATALOG = load_catalog()
SMALL = (
    "district_boundary",
    "town_boundary",
    "village_boundary",
    "grid_cell",
    "road_centerline",
    "house_number",
    "street_lamp",
    "school",
    "water_body",
    "dem",
    "flood_risk",
    "river",
)


def _subset(codes: tuple[str, ...]) -> Catalog:
    layers = tuple(lyr for lyr in CATALOG.layers if lyr.code in codes)
    groups = tuple(g for g in CATALOG.groups if any(lyr.group == g.code for lyr in layers))
    return Catalog(groups=groups, layers=layers)


@pytest.fixture(scope="session")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("district")
    generate(out, scale=0.02, seed=5, truth_layers=asset_layer_codes())
    return out


@pytest.fixture(scope="session")
def loaded(district, engine, settings):
    return load_district(engine, settings, CATALOG, district)


@pytest.mark.slow
def test_every_file_of_the_district_loads(loaded, district):
    manifest = read_manifest(district)
    assert {item.layer for item in loaded} == {e.layer for e in manifest.entries}
    failed = [(item.layer, item.error) for item in loaded if item.error]
    assert not failed
    assert len(manifest.entries) == 104


@pytest.mark.slow
def test_exactly_the_manifest_defects_are_caught(loaded, district, engine):
    manifest = read_manifest(district)
    results = {item.layer: item.result for item in loaded if item.result is not None}
    checked = 0
    for entry in manifest.entries:
        result = results.get(entry.layer)
        if result is None:  # rasters
            continue
        assert result.read == entry.rows, entry.layer
        assert result.loaded + result.rejected == result.read, entry.layer
        with engine.connect() as conn:
            reasons = dict(
                conn.execute(
                    text("SELECT row_number, reason FROM load_rejects WHERE batch_id = :b"),
                    {"b": result.batch_id},
                ).all()
            )
        rejected = set(reasons)
        lost = {u.row for u in entry.unencodable} if hasattr(entry, "unencodable") else set()
        repairable = {d.row for d in entry.defects_of(DefectKind.self_intersection)}
        expected = {d.row for d in entry.defects} - repairable
        assert expected <= rejected, (entry.layer, sorted(expected - rejected)[:5])
        extra = rejected - expected - repairable - lost
        assert not extra, (entry.layer, [(r, reasons[r]) for r in sorted(extra)[:5]])
        assert set(result.repaired) <= repairable, entry.layer
        checked += 1
    assert checked == 102


@pytest.mark.slow
def test_features_get_their_grid_cell_and_village(loaded, engine):
    with engine.connect() as conn:
        total, with_grid, consistent = conn.execute(
            text(
                "SELECT count(*), count(grid_code), "
                "count(*) FILTER (WHERE left(grid_code, 12) = division_code) "
                "FROM layers.house_number"
            )
        ).one()
        versions = conn.execute(
            text("SELECT count(*) FROM catalog_layers WHERE current_version > 0")
        ).scalar()
    assert total > 500
    assert with_grid / total > 0.95
    assert consistent == with_grid
    assert versions >= 102


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    small = _subset(SMALL)
    digests = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / name
        generate(out, scale=0.02, seed=seed, catalog=small)
        files = sorted(p for p in out.rglob("*") if p.is_file() and ".spill" not in str(p))
        digests.append(
            {
                p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in files
            }
        )
    assert digests[0] == digests[1]
    assert digests[0].keys() == digests[2].keys()
    assert digests[0] != digests[2]
    assert any(name.startswith("rasters/") for name in digests[0])


@pytest.mark.slow
def test_case_stream_from_the_generated_district(district, tmp_path):
    from itertools import islice

    from cases.district_inputs import case_inputs
    from cases.synthetic import generate_cases, write_case_stream

    addresses, assets, villages = case_inputs(district, CATALOG)
    assert len(addresses) > 300 and len(villages) == 261
    assert {"street_lamp", "manhole_cover"} <= set(assets)
    out = tmp_path / "cases.jsonl"
    count = write_case_stream(
        islice(
            generate_cases(addresses=addresses, assets=assets, villages=villages, days=5, seed=2),
            200,
        ),
        out,
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert count == len(lines) == 200
    systems = {line.split('"system":"', 1)[1].split('"', 1)[0] for line in lines}
    assert len(systems) >= 4


@pytest.mark.slow
def test_codes_placed_while_reading_are_the_ones_postgis_finds(loaded, engine, settings):
    """Each feature's codes: the smallest cell holding its anchor, else the village (SQL)."""
    for layer, anchor in (("house_number", "t.geom"), ("building", "ST_PointOnSurface(t.geom)")):
        with engine.connect() as conn:
            total, grid, division, district = conn.execute(
                text(f"""
                WITH found AS (
                    SELECT t.grid_code, t.division_code, t.district_code,
                        (SELECT min(c.code) FROM layers.grid_cell c
                         WHERE ST_Intersects(c.geom, {anchor})) AS cell,
                        (SELECT min(v.code) FROM layers.village_boundary v
                         WHERE ST_Intersects(v.geom, {anchor})) AS village
                    FROM layers."{layer}" t)
                SELECT count(*),
                    count(*) FILTER (WHERE grid_code IS DISTINCT FROM cell),
                    count(*) FILTER (
                        WHERE division_code IS DISTINCT FROM coalesce(left(cell, 12), village)),
                    count(*) FILTER (WHERE district_code <> coalesce(
                        left(coalesce(left(cell, 12), village), 6), :district))
                FROM found""").bindparams(district=settings.district_code)
            ).one()
        assert total > 100, layer
        assert (grid, division, district) == (0, 0, 0), layer

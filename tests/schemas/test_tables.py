"""Layer tables read back from PostGIS: typmod geometry, one GiST index, natural key, types."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from layers.registry import load_catalog
from schemas.tables import LAYER_SCHEMA

CATALOG = load_catalog()
PG_TYPES = {
    "string": {"text", "character varying"},
    "integer": {"bigint"},
    "float": {"double precision"},
    "boolean": {"boolean"},
    "date": {"date"},
    "datetime": {"timestamp with time zone"},
}


def test_one_table_per_vector_layer_and_none_for_rasters(engine):
    tables = set(inspect(engine).get_table_names(schema=LAYER_SCHEMA))
    assert tables == {layer.code for layer in CATALOG.vector_layers}
    assert not tables & {layer.code for layer in CATALOG.raster_layers}


def test_geometry_typmod_matches_catalog(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT f_table_name, type, srid FROM geometry_columns WHERE f_table_schema = :s"),
            {"s": LAYER_SCHEMA},
        ).all()
    found = {name: (gtype, srid) for name, gtype, srid in rows}
    for layer in CATALOG.vector_layers:
        assert found[layer.code] == (layer.geometry.value.upper(), 4490), layer.code


def test_exactly_one_gist_index_per_layer_table(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tablename, count(*) FROM pg_indexes WHERE schemaname = :s "
                "AND indexdef ILIKE '%USING gist%' GROUP BY tablename"
            ),
            {"s": LAYER_SCHEMA},
        ).all()
    counts = dict(rows)
    for layer in CATALOG.vector_layers:
        assert counts.get(layer.code) == 1, layer.code


def test_natural_key_is_a_unique_constraint(engine):
    inspector = inspect(engine)
    for layer in CATALOG.vector_layers:
        uniques = inspector.get_unique_constraints(layer.code, schema=LAYER_SCHEMA)
        columns = [tuple(u["column_names"]) for u in uniques]
        assert (*layer.natural_key, "district_code") in columns, layer.code


@pytest.mark.parametrize("layer", CATALOG.vector_layers[:104:7], ids=lambda lyr: lyr.code)
def test_attribute_columns_typed_and_nullability(engine, layer):
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": LAYER_SCHEMA, "t": layer.code},
        ).all()
    columns = {name: (dtype, nullable == "YES") for name, dtype, nullable in rows}
    for attr in layer.attributes:
        dtype, nullable = columns[attr.name]
        assert dtype in PG_TYPES[attr.type.value], (attr.name, dtype)
        assert nullable is (not attr.required), attr.name
    for common in (
        "fid",
        "geom",
        "district_code",
        "division_code",
        "grid_code",
        "batch_id",
        "layer_version",
        "loaded_at",
    ):
        assert common in columns


def test_geometry_constraint_rejects_wrong_type_and_srid(engine):
    layer = next(lyr for lyr in CATALOG.vector_layers if lyr.geometry.value == "Point")
    with engine.connect() as conn, pytest.raises(Exception, match="(?i)geometry|srid"):
        conn.execute(
            text(
                f'INSERT INTO {LAYER_SCHEMA}."{layer.code}" (geom, district_code) '
                "VALUES (ST_GeomFromText('LINESTRING(113 23, 113.1 23.1)', 4326), '440114')"
            )
        )


def test_catalog_rows_synchronised(engine):
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, declaration->>'zh' FROM catalog_layers")).all()
    assert len(rows) == 104
    assert dict(rows)["manhole_cover"] == CATALOG.layer("manhole_cover").zh

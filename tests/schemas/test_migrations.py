"""Migrations: upgrade from empty, downgrade to empty, additive catalog sync."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from layers.registry import load_catalog
from schemas import migrate
from schemas.catalog import Attribute, AttributeType
from schemas.database import make_engine
from schemas.errors import DatabaseError
from schemas.tables import LAYER_SCHEMA

CATALOG = load_catalog()


@pytest.fixture()
def empty_engine(empty_database):
    eng = make_engine(empty_database, pool_size=2)
    yield eng
    eng.dispose()


def _tables(eng):
    inspector = inspect(eng)
    return set(inspector.get_table_names()), set(inspector.get_table_names(schema=LAYER_SCHEMA))


def test_upgrade_from_empty_then_downgrade_to_base(empty_engine):
    assert migrate.current_revision(empty_engine) is None
    migrate.upgrade(empty_engine, CATALOG, srid=4490)
    assert migrate.current_revision(empty_engine) == migrate.head()
    core, layer_tables = _tables(empty_engine)
    assert {"catalog_layers", "divisions", "load_batches", "cases"} <= core
    assert len(layer_tables) == len(CATALOG.vector_layers)

    migrate.downgrade(empty_engine, CATALOG, srid=4490, revision="0001_core")
    core, _ = _tables(empty_engine)
    with empty_engine.connect() as conn:
        schema = conn.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
            {"s": LAYER_SCHEMA},
        ).scalar()
    assert schema is None and "catalog_layers" in core

    migrate.downgrade(empty_engine, CATALOG, srid=4490, revision="base")
    core, _ = _tables(empty_engine)
    assert not core & {"catalog_layers", "divisions", "load_batches", "cases"}
    assert migrate.current_revision(empty_engine) is None

    migrate.upgrade(empty_engine, CATALOG, srid=4490)
    assert len(_tables(empty_engine)[1]) == len(CATALOG.vector_layers)


def test_catalog_growth_adds_columns_and_type_change_is_refused(empty_engine):
    migrate.upgrade(empty_engine, CATALOG, srid=4490)
    lamp = CATALOG.layer("street_lamp")
    extra = Attribute(name="lumen", type=AttributeType.integer, zh="光通量", en="Lumen")
    grown = CATALOG.model_copy(
        update={
            "layers": tuple(
                lyr.model_copy(update={"attributes": (*lyr.attributes, extra)})
                if lyr is lamp
                else lyr
                for lyr in CATALOG.layers
            )
        }
    )
    report = migrate.upgrade(empty_engine, grown, srid=4490)
    assert report.added_columns == ["street_lamp.lumen"]
    columns = {c["name"] for c in inspect(empty_engine).get_columns("street_lamp", LAYER_SCHEMA)}
    assert "lumen" in columns

    changed_attr = extra.model_copy(update={"type": AttributeType.string})
    changed = CATALOG.model_copy(
        update={
            "layers": tuple(
                lyr.model_copy(update={"attributes": (*lyr.attributes, changed_attr)})
                if lyr is lamp
                else lyr
                for lyr in CATALOG.layers
            )
        }
    )
    with pytest.raises(DatabaseError, match="street_lamp.lumen is bigint"):
        migrate.upgrade(empty_engine, changed, srid=4490)

"""Nearest asset, and identifiers/values that try to escape into SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from layers.assets import nearest_asset
from layers.geocode import geocode
from schemas.errors import InvalidInput

POINT = (113.2250, 23.4150)  # ~5 m from the power cover, ~15 m from the sewage cover


def test_nearest_across_layers_with_filters_and_radius(db, catalog):
    with db.connect() as conn:
        any_kind = nearest_asset(conn, catalog, *POINT, ["manhole_cover"], radius_m=30)
        sewage = nearest_asset(
            conn,
            catalog,
            *POINT,
            ["manhole_cover"],
            radius_m=30,
            filters={"kind": ["sewage", "rainwater"]},
        )
        too_far = nearest_asset(conn, catalog, *POINT, ["manhole_cover"], radius_m=3)
        lamps_first = nearest_asset(
            conn, catalog, 113.2255, 23.4055, ["street_lamp", "manhole_cover"], radius_m=2000
        )
        nothing = nearest_asset(conn, catalog, *POINT, [], radius_m=30)
    assert any_kind is not None and any_kind.code == "4401140100005002"
    assert any_kind.maintenance_unit == "供电局花都分局" and any_kind.distance_m < 8
    assert sewage is not None and sewage.code == "4401140100005001"
    assert too_far is None and nothing is None
    assert lamps_first is not None and (lamps_first.layer, lamps_first.distance_m) == (
        "street_lamp",
        0.0,
    )


@pytest.mark.parametrize(
    ("layers", "filters"),
    [
        (['street_lamp" ; DROP TABLE cases; --'], None),
        (["street_lamp"], {'kind" = kind; DROP TABLE cases; --': ["x"]}),
        (["dem"], None),  # a raster layer: no table to query
    ],
)
def test_identifiers_outside_the_catalog_are_refused(db, catalog, layers, filters):
    with db.connect() as conn, pytest.raises(InvalidInput):
        nearest_asset(conn, catalog, *POINT, layers, radius_m=30, filters=filters)
    assert "cases" in inspect(db).get_table_names()


def test_values_are_bound_never_spliced(db, catalog):
    evil = "x'); DROP TABLE cases; --"
    with db.connect() as conn:
        assert (
            nearest_asset(
                conn, catalog, *POINT, ["manhole_cover"], radius_m=30, filters={"kind": [evil]}
            )
            is None
        )
        assert geocode(conn, catalog, f"新华街道{evil}12号") is None
        assert geocode(conn, catalog, "新华街道迎宾大道12号'; DROP TABLE cases; --") is not None
    assert "cases" in inspect(db).get_table_names()

"""The catalog: 104 valid layers, every group populated, the layers the platform needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from layers.registry import CATALOG_DIR, load_catalog
from schemas.catalog import GroupFamily, LayerRole, Sensitivity
from schemas.errors import CatalogError

REQUIRED = {
    "district_boundary",
    "town_boundary",
    "village_boundary",
    "grid_cell",
    "road_centerline",
    "house_number",
    "building",
    "river",
    "water_body",
    "street_lamp",
    "manhole_cover",
    "drainage_pipe",
    "outfall",
    "pumping_station",
    "waterlogging_point",
    "emergency_stockpile",
    "emergency_shelter",
    "fire_hydrant",
    "cctv_camera",
    "public_toilet",
    "school",
    "hospital",
    "police_station",
    "fire_station",
    "population",
    "real_housing",
    "real_unit",
    "dem",
    "flood_risk",
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_exactly_104_layers_with_unique_codes(catalog):
    codes = [layer.code for layer in catalog.layers]
    assert len(codes) == 104
    assert len(set(codes)) == 104


def test_every_group_populated_and_every_family_used(catalog):
    for group in catalog.groups:
        assert catalog.in_group(group.code), f"group {group.code} has no layers"
    assert {g.family for g in catalog.groups} == set(GroupFamily)
    assert {layer.group for layer in catalog.layers} == {g.code for g in catalog.groups}


def test_required_layers_present(catalog):
    missing = REQUIRED - {layer.code for layer in catalog.layers}
    assert not missing


def test_every_role_played_once(catalog):
    for role in LayerRole:
        assert catalog.by_role(role).role == role


def test_rasters_are_the_dem_and_flood_risk_at_least(catalog):
    rasters = {layer.code for layer in catalog.raster_layers}
    assert {"dem", "flood_risk"} <= rasters
    for layer in catalog.raster_layers:
        assert layer.raster is not None and not layer.attributes


def test_manhole_cover_kinds(catalog):
    kind = catalog.layer("manhole_cover").attribute("kind")
    assert set(kind.enum_values) == {
        "water_supply",
        "sewage",
        "rainwater",
        "power",
        "telecom",
        "gas",
        "heat",
    }
    assert kind.required


def test_population_is_restricted_and_personal(catalog):
    population = catalog.by_role(LayerRole.population)
    assert population.sensitivity is Sensitivity.restricted
    assert {"person_name", "id_number", "phone"} <= set(population.personal_fields)
    for layer in catalog.layers:
        if layer.personal_fields:
            assert layer.sensitivity is Sensitivity.restricted, layer.code


def test_natural_keys_are_required_attributes(catalog):
    for layer in catalog.vector_layers:
        assert layer.natural_key, layer.code
        for key in layer.natural_key:
            assert layer.attribute(key).required


def test_chinese_aliases_are_declared(catalog):
    with_cjk = [
        layer.code
        for layer in catalog.vector_layers
        if any(
            any("\u4e00" <= ch <= "\u9fff" for alias in a.aliases for ch in alias)
            for a in layer.attributes
        )
    ]
    assert len(with_cjk) == len(catalog.vector_layers)


def _write_catalog(folder: Path, mutate) -> Path:
    data = yaml.safe_load((CATALOG_DIR / "04_standard_grid.yaml").read_text(encoding="utf-8"))
    mutate(data)
    target = folder / "04_standard_grid.yaml"
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["layers"][1].update(geometry="Triangle"),
            "layer town_boundary, field geometry",
        ),
        (lambda d: d["layers"][3]["attributes"][0].update(required=False), "layer grid_cell"),
        (
            lambda d: d["layers"][2]["attributes"][1].update(type="text"),
            "layer village_boundary, attribute name, field type",
        ),
        (
            lambda d: d["layers"][0].update(sensitivity="secret"),
            "layer district_boundary, field sensitivity",
        ),
        (
            lambda d: d["layers"][0]["attributes"][2].update(min=10, max=1),
            "layer district_boundary, attribute area_km2",
        ),
    ],
)
def test_malformed_file_names_file_layer_and_field(tmp_path, mutate, expected):
    path = _write_catalog(tmp_path, mutate)
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_duplicate_layer_code_across_files_refused(tmp_path):
    _write_catalog(tmp_path, lambda d: None)
    _write_catalog(tmp_path, lambda d: None).rename(tmp_path / "05_copy.yaml")
    _write_catalog(tmp_path, lambda d: None)
    with pytest.raises(CatalogError, match="codes repeat"):
        load_catalog(tmp_path)


def test_unparseable_yaml_refused(tmp_path):
    (tmp_path / "01_bad.yaml").write_text("group: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="01_bad.yaml: cannot be read as YAML"):
        load_catalog(tmp_path)

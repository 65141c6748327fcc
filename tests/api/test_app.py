"""The HTTP app: health, catalog, errors in one problem format."""

from __future__ import annotations

from schemas import migrate


def test_health_reports_head_revision_and_postgis(client):
    body = client.get("/health").json()
    assert body["revision"] == migrate.head()
    assert body["postgis"].startswith("3.")
    assert body["layer_tables"] > 90


def test_catalog_lists_104_layers_and_filters_by_group(client):
    layers = client.get("/catalog/layers").json()
    assert len(layers) == 104
    grid = client.get("/catalog/layers", params={"group": "standard_grid"}).json()
    assert {row["code"] for row in grid} >= {"grid_cell", "village_boundary"}
    assert all(row["group"] == "standard_grid" for row in grid)


def test_layer_declaration_carries_full_schema(client):
    decl = client.get("/catalog/layers/manhole_cover").json()
    kinds = next(a for a in decl["attributes"] if a["name"] == "kind")
    assert {e["value"] for e in kinds["enum"]} >= {"sewage", "gas", "heat"}
    assert decl["natural_key"] and decl["sensitivity"] in {"public", "internal"}


def test_unknown_layer_and_group_are_404_problems(client):
    resp = client.get("/catalog/layers/no_such_layer")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "no_such_layer" in resp.json()["detail"]
    assert client.get("/catalog/layers", params={"group": "nope"}).status_code == 404


def test_too_long_code_is_422_not_500(client):
    resp = client.get("/catalog/layers/" + "x" * 100)
    assert resp.status_code == 422
    assert resp.json()["status"] == 422

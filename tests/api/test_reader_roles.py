"""The caller as a layer reader: what each role may read by api/policy.yaml, and the refusals."""

from __future__ import annotations

import pytest

from api.readers import reader_of
from api.security.policy import default_policy
from layers.access import DEFAULT_READER, readable_layers, served_layer
from layers.registry import default_catalog
from schemas.accounts import ANONYMOUS, Principal, Role, unrestricted
from schemas.catalog import Sensitivity
from schemas.errors import Forbidden, NotFound, Unauthenticated
from schemas.settings import Settings

PUBLIC, INTERNAL, RESTRICTED = Sensitivity.public, Sensitivity.internal, Sensitivity.restricted


def _person(role: Role) -> Principal:
    return Principal(name=f"someone_{role.value}", role=role, via="token")


@pytest.fixture(scope="module")
def on(base_settings: Settings) -> Settings:
    """Return settings with authentication on."""
    return base_settings.model_copy(update={"auth_enabled": True})


@pytest.mark.parametrize(
    ("role", "levels", "mask"),
    [
        (Role.planner, {PUBLIC, INTERNAL}, True),
        (Role.dispatcher, {PUBLIC, INTERNAL}, True),
        (Role.analyst, {PUBLIC, INTERNAL, RESTRICTED}, True),
        (Role.supervisor, {PUBLIC, INTERNAL, RESTRICTED}, False),
        (Role.admin, {PUBLIC, INTERNAL, RESTRICTED}, False),
    ],
)
def test_roles_read_what_the_policy_says(on, role, levels, mask):
    reader = reader_of(_person(role), default_policy(), on)
    assert (set(reader.levels), reader.mask, reader.role) == (levels, mask, role.value)


def test_anonymous_and_authentication_off(on, base_settings):
    anonymous = reader_of(ANONYMOUS, default_policy(), on)
    assert set(anonymous.levels) == {PUBLIC} and anonymous.role == "anonymous"
    assert reader_of(unrestricted("x"), default_policy(), base_settings) is DEFAULT_READER
    assert reader_of(_person(Role.admin), default_policy(), base_settings) is DEFAULT_READER
    assert set(DEFAULT_READER.levels) == {PUBLIC, INTERNAL} and DEFAULT_READER.role is None


def test_listing_and_refusals_follow_the_reader(on, base_settings):
    catalog = default_catalog(base_settings.catalog_dir)
    policy = default_policy()
    anonymous = reader_of(ANONYMOUS, policy, on)
    planner = reader_of(_person(Role.planner), policy, on)
    analyst = reader_of(_person(Role.analyst), policy, on)
    listed = {name: {lyr.code for lyr in readable_layers(catalog, r)} for name, r in
              [("anonymous", anonymous), ("planner", planner), ("analyst", analyst)]}  # fmt: skip
    assert "manhole_cover" not in listed["anonymous"] and "school" in listed["anonymous"]
    assert listed["anonymous"] < listed["planner"] < listed["analyst"]
    assert "population" in listed["analyst"] - listed["planner"]
    assert not any(catalog.layer(c).is_raster for c in listed["analyst"])
    with pytest.raises(Unauthenticated):
        served_layer(catalog, "manhole_cover", reader=anonymous)
    with pytest.raises(Forbidden):
        served_layer(catalog, "population", reader=planner)
    with pytest.raises(NotFound):
        served_layer(catalog, "population", reader=DEFAULT_READER)
    with pytest.raises(NotFound):
        served_layer(catalog, "no_such_layer", reader=analyst)
    population = served_layer(catalog, "population", reader=analyst)
    assert analyst.masks(population) and not analyst.masks(catalog.layer("school"))

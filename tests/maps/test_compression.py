"""Gzip for the map pages' large answers only, and only for clients that take it."""

from __future__ import annotations

import httpx
import pytest

from api.compression import accepts_gzip


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("identity", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_with_its_q_values(header, takes):
    assert accepts_gzip(header) is takes


def test_case_points_and_assets_go_gzipped_to_clients_that_take_it(ops_server, ops_cases):
    with httpx.Client(base_url=ops_server, timeout=30) as http:
        packed = http.get("/cases/points", headers={"Accept-Encoding": "gzip"})
        refused = http.get("/cases/points", headers={"Accept-Encoding": "gzip;q=0"})
        script = http.get("/maps/static/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"})
        health = http.get("/health", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in refused.headers
    assert packed.json() == refused.json() and packed.json()["numberMatched"] >= 1
    assert script.headers["content-encoding"] == "gzip"
    assert script.num_bytes_downloaded < len(script.content) / 2
    assert "content-encoding" not in health.headers  # other routes are left alone

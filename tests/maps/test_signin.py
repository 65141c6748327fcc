"""Signing in on the map pages with authentication on: the token lasts the tab, until it expires.

The app runs over the dispatcher tests' district with ``auth_enabled`` and a supervisor's
account. The dispatcher's map is refused at first and shows the sign-in form; once signed
in, the token kept in sessionStorage serves reloads and the other map pages (the grid cell,
the planner) without signing in again. An expired token, or one the server no longer
takes, is dropped and the form shown again.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from live_server import serve
from maps_support import open_page
from ops_support import CASES, OpsDb

from api.app import create_app
from api.security.tokens import issue_token
from schemas.accounts import User, create_user

PASSWORD = "Map-pages-" + secrets.token_hex(8)
READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.loads >= 1"
A1 = "440114001201001"
FORM = ".sibiao-auth form input[name=password]"


@pytest.fixture(scope="module")
def secure(ops_db: OpsDb, ops_cases: list[dict[str, Any]]) -> Iterator[tuple[str, User, Any]]:
    """Serve the district with sign-in required; yield the URL, a supervisor, the settings."""
    settings = ops_db.settings.model_copy(
        update={"auth_enabled": True, "secret_key": "map-pages-test-" + secrets.token_hex(16)}
    )
    with ops_db.engine.begin() as conn:
        user = create_user(
            conn,
            name=f"mapsup{secrets.token_hex(3)}",
            role="supervisor",
            password=PASSWORD,
            district_code=settings.district_code,
        )
    with serve(create_app(settings, catalog=ops_db.catalog), "uvicorn-signin") as url:
        yield url, user, settings


def test_sign_in_lasts_across_reloads_and_map_pages(secure, browser, artifacts):
    url, user, _ = secure
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{url}/maps/dispatch", wait_until="load")
        page.wait_for_selector(FORM, timeout=20_000)  # /cases/points answered 401
        assert page.evaluate("() => sessionStorage.getItem('sibiao.token')") is None
        page.fill(".sibiao-auth input[name=username]", user.name)
        page.fill(FORM, PASSWORD)
        page.click(".sibiao-auth button[type=submit]")
        page.wait_for_function(READY, timeout=20_000)  # the page reloaded, signed in
        assert page.evaluate("() => Object.keys(window.sibiaoPage.markers).length") == len(CASES)
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        page.wait_for_function(
            "() => /supervisor/.test(document.querySelector('.sibiao-auth').textContent)"
        )
        visit.errors.clear()
        visit.failed.clear()

        page.reload(wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.locator(FORM).count() == 0

        page.goto(f"{url}/maps/grid/{A1}", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.evaluate("() => window.sibiaoPage.cases.length") == 2
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        assert page.locator(FORM).count() == 0

        page.goto(f"{url}/maps/planner?lon=113.2152&lat=23.4150", wait_until="load")
        page.wait_for_function("() => window.sibiaoPage && window.sibiaoPage.runs >= 1")
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        page.screenshot(path=str(artifacts / "planner-signed-in.png"))
        assert visit.outside == []
        # Leaving a page cancels its tile requests in flight; nothing else may fail.
        assert [f for f in visit.failed if "ERR_ABORTED" not in f] == []
        assert [e for e in visit.errors if "404" not in e] == []  # no rasters loaded here
    finally:
        visit.close()


def test_an_expired_or_refused_token_is_dropped_and_the_form_shown(secure, browser):
    url, user, settings = secure
    expired = issue_token(user, settings, now=datetime.now(UTC) - timedelta(days=2)).access_token
    for token, why in ((expired, "expired"), ("a.b.c", "refused")):
        visit = open_page(browser)
        page = visit.page
        try:
            page.context.add_init_script(
                f"if (!sessionStorage.getItem('seeded')) {{ sessionStorage.setItem('seeded', 1);"
                f" sessionStorage.setItem('sibiao.token', {token!r}); }}"
            )
            page.goto(f"{url}/maps/dispatch", wait_until="load")
            page.wait_for_selector(FORM, timeout=20_000)
            assert page.evaluate("() => sessionStorage.getItem('sibiao.token')") is None, why
            assert "退出" not in page.inner_text(".sibiao-auth"), why
        finally:
            visit.close()

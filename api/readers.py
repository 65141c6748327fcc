"""The caller of a request as a layer reader (:class:`layers.access.Reader`).

The sensitivities a role may read come from ``api/policy.yaml`` (section ``sensitivity``);
masking of personal fields from :mod:`layers.masking`. The rule itself (which layers a
reader lists and reads) is :mod:`layers.access`'s. Personal data goes only to a caller who
showed credentials that held: with authentication off every caller is the platform's
default reader (public and internal layers, restricted ones unserved).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.security.middleware import DETAIL_KEY
from api.security.policy import Policy
from layers.access import DEFAULT_READER, Reader
from layers.masking import masks_personal
from schemas.accounts import Principal
from schemas.catalog import Catalog, Sensitivity
from schemas.settings import Settings

CREDENTIALS = frozenset({"token", "api_key"})


def reader_of(principal: Principal | None, policy: Policy, settings: Settings) -> Reader:
    """Return what ``principal`` may read, by the policy's sensitivity section."""
    if not settings.auth_enabled or principal is None or principal.via == "auth_disabled":
        return DEFAULT_READER
    role = principal.role
    levels = {level for level, names in policy.sensitivity.items() if role in policy.expand(names)}
    if principal.via not in CREDENTIALS:
        levels.discard(Sensitivity.restricted)
    return Reader(levels=frozenset(levels), mask=masks_personal(role.value), role=role.value)


async def get_reader(request: Request) -> Reader:
    """Return the request's caller as a layer reader (no I/O: no thread needed)."""
    return reader_of(
        getattr(request.state, "principal", None),
        request.app.state.policy,
        request.app.state.settings,
    )


ReaderDep = Annotated[Reader, Depends(get_reader)]


def note_layers(request: Request, catalog: Catalog, codes: list[str]) -> None:
    """Name in the request's audit row the layers it reads where the policy cannot see them.

    ``POST /within`` names its layers in the body: its audit row (every POST is audited)
    then says which layers were asked for and whether a restricted one was among them.
    """
    known = [code for code in dict.fromkeys(codes) if catalog.has_layer(code)]
    detail: dict[str, object] = {"layers": known[:50]}
    if any(catalog.layer(code).sensitivity is Sensitivity.restricted for code in known):
        detail["sensitivity"] = Sensitivity.restricted.value
    request.scope.setdefault("state", {})[DETAIL_KEY] = detail

"""GeoReport v2 on the wire: JSON or XML bodies, and errors as a list of {code, description}.

XML follows the spec: element names as in the JSON, lists as a plural root with singular
children (``<services><service>``, ``<service_requests><request>``, ``<attributes><attribute>``,
``<values><value>``, ``<errors><error>``), booleans ``true``/``false``, null as an empty element.

Every route of the Open311 router uses :class:`Open311Route`: whatever goes wrong (a domain
error, a malformed query, an unexpected failure) answers in the format of the path
(``.json``/``.xml``) with the spec's error list, never the platform's problem+json.
"""

from __future__ import annotations

import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import OUTAGE_MESSAGE, RETRY_AFTER, is_database_outage, status_for
from schemas.errors import NotFound, SibiaoError

log = logging.getLogger("sibiao.api.open311")

JSON_TYPE: Final = "application/json; charset=utf-8"
XML_TYPE: Final = "text/xml; charset=utf-8"
#: List element -> element of each entry.
SINGULAR: Final = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}


def check_format(fmt: str) -> str:
    """Return ``json`` or ``xml``; NotFound for any other extension."""
    if fmt not in ("json", "xml"):
        raise NotFound(f"format {fmt!r} is not served: use .json or .xml")
    return fmt


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        child = SINGULAR.get(element.tag, "item")
        for item in value:
            _fill(ET.SubElement(element, child), item)
    else:
        element.text = _text(value)


def to_xml(root: str, value: object) -> bytes:
    """Return ``value`` as an XML document with the root element ``root``."""
    element = ET.Element(root)
    _fill(element, value)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return body


def render(fmt: str, root: str, value: object, status: int = 200) -> Response:
    """Return ``value`` as JSON, or as XML under ``root``."""
    if fmt == "xml":
        return Response(to_xml(root, value), status_code=status, media_type=XML_TYPE)
    return JSONResponse(value, status_code=status, media_type=JSON_TYPE)


def error_response(fmt: str, status: int, description: str) -> Response:
    """Return the spec's error list with one error (503 says when to retry)."""
    answer = render(fmt, "errors", [{"code": status, "description": description}], status)
    if status == 503:
        answer.headers["Retry-After"] = RETRY_AFTER
    return answer


def _format_of(request: Request) -> str:
    fmt = request.path_params.get("fmt")
    if fmt in ("json", "xml"):
        return str(fmt)
    return "xml" if request.url.path.endswith(".xml") else "json"


def _validation_text(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts) or "invalid request"


class Open311Route(APIRoute):
    """A route whose every failure answers with GeoReport's error list."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so errors become {code, description} lists."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SibiaoError as exc:
                status = status_for(exc)
                if status >= 500 and status != 503:
                    return _server_error(request, exc)
                if status == 409:
                    status = 400
                return error_response(_format_of(request), status, exc.message)
            except RequestValidationError as exc:
                return error_response(_format_of(request), 400, _validation_text(exc))
            except StarletteHTTPException as exc:
                return error_response(_format_of(request), exc.status_code, str(exc.detail))
            except Exception as exc:  # noqa: BLE001 - logged with an id, never shown
                return _server_error(request, exc)

        return guarded


def _server_error(request: Request, exc: Exception) -> Response:
    if is_database_outage(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(_format_of(request), 503, OUTAGE_MESSAGE)
    error_id = uuid.uuid4().hex[:12]
    log.exception("error %s on %s %s: %r", error_id, request.method, request.url.path, exc)
    return error_response(_format_of(request), 500, f"internal error, reference {error_id}")

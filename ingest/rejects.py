"""Rejected rows: spooled to disk while a file streams, stored with the batch, reported.

Reports are CSV (every row) and GeoJSON (with the location a row had, for the maps).
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any, Final

from sqlalchemy import Connection, text

from schemas.errors import InvalidInput

RejectRow = tuple[int, str | None, str, str | None, bytes | None]
REPORT_COLUMNS = ("row", "field", "reason", "value")
MAX_GEOJSON_REJECTS: Final = 10_000


class RejectSpool:
    """Collect rejected rows in a temporary file (memory stays flat whatever the count)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()
        self.count = 0

    def add(self, rows: list[RejectRow]) -> None:
        """Append rejected rows."""
        if rows:
            pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self.count += len(rows)

    def __iter__(self) -> Iterator[RejectRow]:
        self._file.seek(0)
        while True:
            try:
                chunk = pickle.load(self._file)  # noqa: S301 - our own temporary file
            except EOFError:
                break
            yield from chunk

    def store(self, conn: Connection, batch_id: int, district: str) -> None:
        """Write every spooled row into ``load_rejects`` (COPY)."""
        if not self.count:
            return
        raw = conn.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY load_rejects (batch_id, row_number, field, reason, value, geom,"
                " district_code) FROM STDIN"
            ) as copy,
        ):
            for row, field, reason, value, wkb in self:
                copy.write_row(
                    (batch_id, row, field, reason, value, wkb.hex() if wkb else None, district)
                )

    def close(self) -> None:
        """Delete the temporary file."""
        self._file.close()


def write_report(rows: Iterator[tuple[int, str | None, str, str | None]], out: IO[str]) -> int:
    """Write rejected rows as CSV (row, field, reason, value); return how many."""
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
        count += 1
    return count


def stored_rejects(
    conn: Connection, batch_id: int
) -> Iterator[tuple[int, str | None, str, str | None]]:
    """Yield a batch's stored rejects in row order."""
    result = conn.execution_options(stream_results=True, yield_per=5000).execute(
        text(
            "SELECT row_number, field, reason, value FROM load_rejects WHERE batch_id = :b "
            "ORDER BY row_number"
        ),
        {"b": batch_id},
    )
    for row_number, field, reason, value in result:
        yield int(row_number), field, reason, value


def report_csv(conn: Connection, batch_id: int) -> str:
    """Return a batch's rejects as CSV text."""
    buffer = io.StringIO()
    write_report(stored_rejects(conn, batch_id), buffer)
    return buffer.getvalue()


def rejects_geojson(
    conn: Connection, batch_id: int, *, limit: int, located: bool = False, offset: int = 0
) -> dict[str, Any]:
    """Return a batch's rejects in row order as a GeoJSON FeatureCollection.

    Parameters
    ----------
    conn
        An open connection.
    batch_id
        The load.
    limit, offset
        Which rejects, in row order (``limit`` at most ``MAX_GEOJSON_REJECTS``).
    located
        Only the rejects that kept a (non-empty) geometry; others have ``geometry: null``.

    Returns
    -------
    dict
        ``FeatureCollection`` whose features carry ``row``, ``field``, ``reason`` and
        ``value``; coordinates are storage lon/lat; ``numberMatched`` counts all the
        batch's rejects that qualify, ``numberReturned`` those returned.
    """
    if not 1 <= limit <= MAX_GEOJSON_REJECTS:
        raise InvalidInput(f"limit must be within 1..{MAX_GEOJSON_REJECTS}")
    where = "batch_id = :b" + (" AND geom IS NOT NULL AND NOT ST_IsEmpty(geom)" if located else "")
    params = {"b": batch_id, "n": limit, "o": max(offset, 0)}
    matched = conn.execute(
        text(f"SELECT count(*) FROM load_rejects WHERE {where}"), params
    ).scalar_one()
    rows = conn.execute(
        text(
            "SELECT id, row_number, field, reason, value,"
            " CASE WHEN geom IS NULL OR ST_IsEmpty(geom) THEN NULL"
            " ELSE ST_AsGeoJSON(geom, 7) END AS geometry"
            f" FROM load_rejects WHERE {where} ORDER BY row_number, id LIMIT :n OFFSET :o"
        ),
        params,
    ).all()
    features = [
        {
            "type": "Feature",
            "id": int(row.id),
            "geometry": None if row.geometry is None else json.loads(row.geometry),
            "properties": {
                "row": int(row.row_number),
                "field": row.field,
                "reason": row.reason,
                "value": row.value,
            },
        }
        for row in rows
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": int(matched),
        "numberReturned": len(features),
    }

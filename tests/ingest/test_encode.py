"""The binary COPY encoder, checked by PostgreSQL itself: what it reads back is what we sent.

Each shape of column takes its own path in ``ingest.encode`` (fixed-width numbers with and
without NULLs, columns NULL in every row, text of varying length, text whose values all
have the same length, empty strings, EWKB), so each appears here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from ingest.encode import SIGNATURE, TRAILER, Column, PgType, encode_column, encode_rows
from ingest.points import point_ewkb

N = 6
COLUMNS: list[tuple[str, PgType, pa.Array]] = [
    ("i8", PgType.int8, pa.array([1, -2, 3, 2**40, 0, 7], pa.int64())),
    ("i8_nulls", PgType.int8, pa.array([None, 5, None, 6, 7, None], pa.int64())),
    ("i4_all_null", PgType.int4, pa.nulls(N, pa.int32())),
    ("f8", PgType.float8, pa.array([0.5, -1.25, 1e300, 0.0, 3.0, 2.0])),
    ("flag", PgType.bool, pa.array([True, False, None, True, False, True])),
    ("day", PgType.date, pa.array([date(2026, 11, 29), None, date(1999, 1, 1)] * 2)),
    (
        "moment",
        PgType.timestamptz,
        pa.array([datetime(2026, 11, 29, 8, 30, tzinfo=UTC), None] * 3, pa.timestamp("us", "UTC")),
    ),
    ("varying", PgType.text, pa.array(["花都区", "", None, "a", "新华街道城市管理办公室", "bb"])),
    ("same_len", PgType.text, pa.array([f"44011400{i}001" for i in range(N)])),
    ("repeated", PgType.text, pa.array(["花都区路灯管理所"] * N)),
    ("empty", PgType.text, pa.array([""] * N)),
    ("text_all_null", PgType.text, pa.nulls(N, pa.string())),
    ("sliced", PgType.text, pa.array(["x", "yy", "zzz", "ww", "vv", "uu", "tt", "ss"])[2:]),
    (
        "geom",
        PgType.bytea,
        point_ewkb(np.linspace(113.1, 113.2, N), np.linspace(23.3, 23.4, N), 4490),
    ),
]


@pytest.fixture
def table(engine: Engine):
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS public.encode_check"))
        conn.execute(
            text(
                "CREATE TABLE public.encode_check (i8 bigint, i8_nulls bigint, i4_all_null integer,"
                " f8 double precision, flag boolean, day date, moment timestamptz, varying text,"
                " same_len text, repeated text, empty text, text_all_null text, sliced text,"
                " geom geometry(Point, 4490))"
            )
        )
    yield "public.encode_check"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE public.encode_check"))


def _copy(engine: Engine, table: str, payload: bytes | memoryview) -> None:
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        names = ", ".join(name for name, _, _ in COLUMNS)
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as c,
        ):
            c.write(SIGNATURE)
            c.write(payload)
            c.write(TRAILER)


def test_postgresql_reads_back_every_value_sent(engine, table):
    _copy(engine, table, encode_rows([Column(values, kind) for _, kind, values in COLUMNS]))
    names = ", ".join(name for name, _, _ in COLUMNS if name != "geom")
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {names}, ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM {table} ORDER BY i8")
        ).all()
    expected = sorted(
        zip(*(values.to_pylist() for name, _, values in COLUMNS if name != "geom"), strict=True),
        key=lambda row: row[0],
    )
    assert [tuple(row[:-3]) for row in rows] == expected
    x = np.linspace(113.1, 113.2, N)
    by_i8 = np.argsort(COLUMNS[0][2].to_numpy())
    assert [row[-3] for row in rows] == pytest.approx(x[by_i8].tolist(), abs=0)
    assert {row[-1] for row in rows} == {4490}


def test_a_column_encodes_alone_as_its_cells_in_the_joined_rows():
    cells = [encode_column(Column(values, kind)).to_pylist() for _, kind, values in COLUMNS]
    rows = bytes(encode_rows([Column(values, kind) for _, kind, values in COLUMNS]))
    count = len(COLUMNS).to_bytes(2, "big")
    assert rows == b"".join(count + b"".join(col[i] for col in cells) for i in range(N))

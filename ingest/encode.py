"""Encode validated columns into PostgreSQL's binary COPY format, vectorised with Arrow.

A row of ``COPY ... (FORMAT BINARY)`` is an int16 field count followed, per field, by
an int32 length (-1 for NULL) and the value in the type's binary send format. Each
column is encoded into an Arrow binary array of "length + value" cells, the columns are
joined element-wise, and the joined array's value buffer *is* the stream: no Python
loop runs per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
_NULL = (-1).to_bytes(4, "big", signed=True)
_PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
Part: TypeAlias = np.ndarray | pa.Array  # fixed-width cells as (n, width) bytes, or Arrow binary


class PgType(StrEnum):
    """Column types the encoder knows (their binary send formats)."""

    int8 = "bigint"
    int4 = "integer"
    float8 = "double precision"
    bool = "boolean"
    text = "text"
    date = "date"
    timestamptz = "timestamp with time zone"
    bytea = "bytea"  # also geometry: EWKB is PostGIS's binary input


@dataclass(frozen=True)
class Column:
    """One column to encode: its values (Arrow) and its PostgreSQL type."""

    values: pa.Array
    kind: PgType


def _bytes(values: np.ndarray) -> np.ndarray:
    """Return fixed-width values as an (n, width) array of their bytes."""
    return np.ascontiguousarray(values).view(np.uint8).reshape(values.shape[0], -1)


def _fixed(values: np.ndarray, width: int, nulls: np.ndarray | None) -> Part:
    """Return 'length + value' cells for fixed-width big-endian values."""
    n = values.shape[0]
    cells = np.empty(n, dtype=[("len", ">i4"), ("val", values.dtype)])
    cells["len"] = width
    cells["val"] = values
    if nulls is None or not nulls.any():
        return _bytes(cells)
    encoded = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4 + width), n, [None, pa.py_buffer(cells.tobytes())]
    ).cast(pa.binary())
    return pc.if_else(pa.array(nulls), pa.scalar(_NULL, pa.binary()), encoded)


def _all_null(n: int) -> np.ndarray:
    """Return the cells of a column that is NULL in every row (just the -1 length)."""
    return _bytes(np.full(n, -1, dtype=">i4"))


def _variable(values: pa.Array) -> list[Part]:
    """Return the 'length' cells and the bytes of text or binary values (joined later).

    Values that all have the same length (codes, points' EWKB, one repeated label) are
    fixed-width cells, and a column with no value at all is just its NULL markers.
    """
    n = len(values)
    if values.null_count == n:
        return [_all_null(n)]
    as_binary = values.cast(pa.binary()) if not pa.types.is_binary(values.type) else values
    lengths = pc.binary_length(as_binary).fill_null(-1).to_numpy(zero_copy_only=False)
    if values.null_count == 0 and lengths.min() == lengths.max():
        width = int(lengths[0])
        offsets = np.frombuffer(as_binary.buffers()[1], dtype=np.int32)
        start = int(offsets[as_binary.offset])
        data = np.frombuffer(as_binary.buffers()[2], dtype=np.uint8)[start : start + n * width]
        prefix = _bytes(np.full(n, width, dtype=">i4"))
        return [prefix, data.reshape(n, width)] if width else [prefix]
    return [
        _bytes(lengths.astype(">i4")),
        as_binary.fill_null(b"") if values.null_count else as_binary,
    ]


def _nulls(values: pa.Array) -> np.ndarray | None:
    if values.null_count == 0:
        return None
    return values.is_null().to_numpy(zero_copy_only=False)


def encode_column(column: Column) -> pa.Array:
    """Return the binary COPY cells of one column."""
    parts = _joinable(_parts(column))
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, b"")


def _joinable(parts: list[Part]) -> list[pa.Array]:
    """Return Arrow binary arrays for ``parts``, each run of fixed-width parts made one.

    Fixed-width cells (numbers without nulls, length prefixes, equal-length values) are
    laid side by side in one numpy block per run, so the element-wise join has few arrays
    to walk (a batch of points with codes is often one block and a few text columns).
    """
    out: list[pa.Array] = []
    run: list[np.ndarray] = []

    def flush() -> None:
        if run:
            block = np.ascontiguousarray(np.hstack(run)) if len(run) > 1 else run[0]
            n, width = block.shape
            out.append(
                pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(width), n, [None, pa.py_buffer(block)]
                ).cast(pa.binary())
            )
            run.clear()

    for part in parts:
        if isinstance(part, np.ndarray):
            run.append(part)
        else:
            flush()
            out.append(part)
    flush()
    return out


def _parts(column: Column) -> list[Part]:
    """Return arrays whose element-wise concatenation is the column's binary COPY cells."""
    values, kind = column.values, column.kind
    nulls = _nulls(values)
    if kind in (PgType.text, PgType.bytea):
        return _variable(values)
    return [_fixed_column(values, kind, nulls)]


def _fixed_column(values: pa.Array, kind: PgType, nulls: np.ndarray | None) -> Part:
    if nulls is not None and nulls.all():
        return _all_null(len(values))
    if kind is PgType.int8:
        raw = values.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        return _fixed(raw.astype(">i8"), 8, nulls)
    if kind is PgType.int4:
        raw = values.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        return _fixed(raw.astype(">i4"), 4, nulls)
    if kind is PgType.float8:
        raw = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        return _fixed(raw.astype(">f8"), 8, nulls)
    if kind is PgType.bool:
        raw = values.cast(pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False)
        return _fixed(raw.astype(np.uint8), 1, nulls)
    if kind is PgType.date:
        days = values.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        return _fixed((days.astype(np.int64) - _PG_EPOCH_DAYS).astype(">i4"), 4, nulls)
    if kind is PgType.timestamptz:
        micros = (
            values.cast(pa.timestamp("us", tz="UTC"))
            .cast(pa.int64())
            .fill_null(0)
            .to_numpy(zero_copy_only=False)
        )
        return _fixed((micros - _PG_EPOCH_US).astype(">i8"), 8, nulls)
    raise ValueError(f"no binary encoder for {kind}")


def encode_rows(columns: Sequence[Column]) -> memoryview:
    """Return the tuples of a binary COPY stream (no signature, no trailer).

    Batches must stay under 2 GiB of encoded data (Arrow binary offsets are 32-bit).
    """
    if not columns:
        raise ValueError("nothing to encode")
    n = len(columns[0].values)
    if n == 0:
        return memoryview(b"")
    header = _bytes(np.full(n, len(columns), dtype=">i2"))
    parts = _joinable([header, *(part for column in columns for part in _parts(column))])
    rows = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset : rows.offset + n + 1]
    data = rows.buffers()[2]
    start, stop = int(offsets[0]), int(offsets[-1])
    return memoryview(data)[start:stop]

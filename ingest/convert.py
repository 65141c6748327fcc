"""Convert delivered attribute values to the catalog's types, vectorised per batch.

Arrow compute handles the usual cases without a Python loop; unusual ones (numbers or
dates written as text in odd forms, yes/no in Chinese) go through pandas. Each conversion
returns the typed values, the rows that failed and the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.catalog import Attribute, AttributeType

_TRUE = {"true", "t", "1", "yes", "y", "是", "有", "√"}
_FALSE = {"false", "f", "0", "no", "n", "否", "无", "×"}
LOCAL_TZ = "Asia/Shanghai"


def text_series(column: pa.Array | None, n: int) -> pd.Series:
    """Return a column as an object Series: str/number/date values, None where missing."""
    if column is None:
        return pd.Series(np.full(n, None, dtype=object), dtype=object)
    values = (
        np.asarray(column.to_pylist(), dtype=object)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        else column.to_numpy(zero_copy_only=False)
    )
    values = values.astype(object)
    missing = pd.isna(values)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        stripped = np.char.strip(np.where(missing, "", values).astype(str))
        missing |= stripped == ""
        values = stripped.astype(object)
    values[missing] = None
    return pd.Series(values, dtype=object)


def _strings(series: pd.Series) -> np.ndarray:
    """Return an object array of str, None where missing (floats that are whole shown as ints)."""
    out = np.full(len(series), None, dtype=object)
    for i, value in enumerate(series.to_numpy(dtype=object)):
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def number(series: pd.Series, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the values as floats (NaN where missing or bad) and which were given but bad."""
    given = series.notna().to_numpy()
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = given & np.isnan(numeric)
    if integer:
        bad |= given & ~np.isnan(numeric) & (np.floor(numeric) != numeric)
    return numeric, bad


def _convert(attr: Attribute, series: pd.Series) -> tuple[pa.Array, np.ndarray, str]:
    """Return typed values, rows that failed to convert, and the reason for those."""
    n = len(series)
    kind = attr.type
    if kind is AttributeType.string:
        if series.map(lambda v: isinstance(v, str) or v is None).all():
            text = series.to_numpy(dtype=object)
        else:
            text = _strings(series)
        return pa.array(text, pa.string()), np.zeros(n, bool), ""
    if kind in (AttributeType.integer, AttributeType.float):
        numeric, bad = number(series, kind is AttributeType.integer)
        mask = np.isnan(numeric) | bad
        values = numeric.copy()
        values[mask] = 0
        arr = pa.array(
            values.astype(np.int64) if kind is AttributeType.integer else values, mask=mask
        )
        what = "an integer" if kind is AttributeType.integer else "a number"
        return arr, bad, f"is not {what}"
    if kind is AttributeType.boolean:
        lowered = series.map(lambda v: str(v).strip().casefold() if v is not None else None)
        truth = lowered.isin(_TRUE).to_numpy()
        false = lowered.isin(_FALSE).to_numpy()
        given = series.notna().to_numpy()
        bad = given & ~truth & ~false
        return pa.array(truth, mask=~(truth | false)), bad, "is not yes/no (true/false, 是/否)"
    if kind is AttributeType.date:
        parsed = _dates(series)
        missing = parsed.isna().to_numpy()
        bad = series.notna().to_numpy() & missing
        days = parsed.dt.date.to_numpy(dtype=object).copy()
        days[missing] = None
        arr = pa.array(days, pa.date32())
        return arr, bad, "is not a date (YYYY-MM-DD)"
    parsed = _datetimes(series)
    bad = series.notna().to_numpy() & parsed.isna().to_numpy()
    return pa.array(parsed, pa.timestamp("us", tz="UTC")), bad, "is not a date and time (ISO 8601)"


def _trimmed(column: pa.Array) -> pa.Array:
    """Return a string column trimmed, with empty strings as nulls."""
    text = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def arrow_convert(
    attr: Attribute, column: pa.Array | None, n: int
) -> tuple[pa.Array, np.ndarray, str, object]:
    """Return typed values, failed rows, the reason and the raw values (for reports).

    Arrow compute handles the usual cases without a Python loop; unusual ones (numbers or
    dates written as text in odd forms) fall back to pandas.
    """
    kind = attr.type
    target = {
        AttributeType.string: pa.string(),
        AttributeType.integer: pa.int64(),
        AttributeType.float: pa.float64(),
        AttributeType.boolean: pa.bool_(),
        AttributeType.date: pa.date32(),
    }.get(kind, pa.timestamp("us", tz="UTC"))
    if column is None:
        return pa.nulls(n, target), np.zeros(n, bool), "", None
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    if pa.types.is_string(column.type):
        column = _trimmed(column)
    raw = column
    none = np.zeros(n, bool)
    if kind is AttributeType.string and pa.types.is_string(column.type):
        return column, none, "", raw
    if kind is AttributeType.float and (
        pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
    ):
        return column.cast(pa.float64()), none, "", raw
    if kind is AttributeType.integer and pa.types.is_integer(column.type):
        return column.cast(pa.int64()), none, "", raw
    if kind in (AttributeType.integer, AttributeType.float) and pa.types.is_string(column.type):
        try:
            as_float = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            as_float = None
        if as_float is not None:
            if kind is AttributeType.float:
                return as_float, none, "", raw
            whole = pc.equal(as_float, pc.floor(as_float)).fill_null(True)
            if pc.all(whole).as_py():
                return as_float.cast(pa.int64()), none, "", raw
    if kind is AttributeType.boolean and pa.types.is_boolean(column.type):
        return column, none, "", raw
    if kind is AttributeType.date and pa.types.is_date(column.type):
        return column.cast(pa.date32()), none, "", raw
    if kind is AttributeType.date and pa.types.is_timestamp(column.type):
        local = (
            column
            if column.type.tz is None
            else pc.local_timestamp(column.cast(pa.timestamp(column.type.unit, tz=LOCAL_TZ)))
        )
        return local.cast(pa.date32()), none, "", raw
    if kind is AttributeType.datetime and pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            zoned = pc.assume_timezone(
                column, LOCAL_TZ, ambiguous="earliest", nonexistent="earliest"
            )
        else:
            zoned = column
        return zoned.cast(pa.timestamp("us", tz="UTC")), none, "", raw
    values, bad, reason = _convert(attr, text_series(column, n))
    return values, bad, reason, raw


def _dates(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.replace(r"[/.年月]", "-", regex=True).str.rstrip("日")
    out = pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    compact = out.isna() & text.str.fullmatch(r"\d{8}").fillna(False)
    if compact.any():
        out[compact] = pd.to_datetime(text[compact], format="%Y%m%d", errors="coerce")
    return out


def _datetimes(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series
    else:
        values = pd.to_datetime(
            series.astype("string"), errors="coerce", format="ISO8601", utc=False
        )
    if getattr(values.dt, "tz", None) is None:
        values = values.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="NaT")
    return values.dt.tz_convert("UTC")

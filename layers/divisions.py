"""The administrative divisions register (real codes of the district), read from data."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from schemas.errors import CatalogError
from schemas.tables import divisions

DIVISIONS_CSV = Path(__file__).with_name("data") / "huadu_divisions.csv"
_LENGTH = {"district": 6, "town": 9, "village": 12}


class Division(BaseModel):
    """One row of the register: district, town/subdistrict or village/community."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(pattern=r"^\d{6}(\d{3}){0,2}$")
    name: str = Field(min_length=1)
    level: Literal["district", "town", "village"]
    kind: Literal["district", "subdistrict", "town", "community", "village"]
    parent_code: str = Field(pattern=r"^\d{6}(\d{3}){0,2}$")

    @model_validator(mode="after")
    def _code_fits_level(self) -> Division:
        if len(self.code) != _LENGTH[self.level]:
            raise ValueError(f"a {self.level} code has {_LENGTH[self.level]} digits")
        if self.level != "district" and not self.code.startswith(self.parent_code):
            raise ValueError(f"code {self.code} does not start with its parent {self.parent_code}")
        return self

    @property
    def district_code(self) -> str:
        """Return the 6-digit county code this division belongs to."""
        return self.code[:6]


def read_divisions(path: Path = DIVISIONS_CSV) -> tuple[Division, ...]:
    """Read and validate the register; every parent must be in it (but the district's)."""
    rows: list[Division] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, raw in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append(Division.model_validate(raw))
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "row"
                raise CatalogError(f"{path}: line {number}, field {field}: {err['msg']}") from None
    codes = {d.code for d in rows}
    for div in rows:
        if div.level != "district" and div.parent_code not in codes:
            raise CatalogError(f"{path}: {div.code} names a parent {div.parent_code} not listed")
    return tuple(rows)


@lru_cache(maxsize=1)
def default_divisions() -> tuple[Division, ...]:
    """Return the packaged register, read once."""
    return read_divisions()


def seed_divisions(conn: Connection, rows: tuple[Division, ...]) -> int:
    """Insert or refresh the register in the ``divisions`` table; return the row count."""
    values = [
        {
            "code": d.code,
            "name": d.name,
            "level": d.level,
            "kind": d.kind,
            "parent_code": None if d.level == "district" else d.parent_code,
            "district_code": d.district_code,
        }
        for d in rows
    ]
    stmt = postgresql.insert(divisions).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[divisions.c.code],
        set_={k: stmt.excluded[k] for k in ("name", "level", "kind", "parent_code")},
    )
    conn.execute(stmt)
    return len(values)

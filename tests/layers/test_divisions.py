"""The divisions register: the real codes of Huadu, consistent with their parents."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from layers.divisions import default_divisions, read_divisions
from schemas.errors import CatalogError


def test_register_counts_and_hierarchy():
    rows = default_divisions()
    levels = Counter(d.level for d in rows)
    assert levels == {"district": 1, "town": 10, "village": 261}
    codes = {d.code for d in rows}
    for d in rows:
        if d.level != "district":
            assert d.parent_code in codes and d.code.startswith(d.parent_code)


def test_bad_row_names_line_and_field(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "code,name,level,kind,parent_code\n440114,花都区,district,district,440100\n"
        "44011400,坏,town,town,440114\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError, match=r"line 3, field code"):
        read_divisions(path)


def test_divisions_seeded_in_database(engine):
    with engine.connect() as conn:
        counts = dict(
            conn.execute(text("SELECT level, count(*) FROM divisions GROUP BY level")).all()
        )
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM divisions c LEFT JOIN divisions p ON p.code = c.parent_code "
                "WHERE c.level <> 'district' AND p.code IS NULL"
            )
        ).scalar()
    assert counts == {"district": 1, "town": 10, "village": 261}
    assert orphans == 0

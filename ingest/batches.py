"""The life of a load batch in ``load_batches``: queued, running, committed or failed."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from ingest.rejects import RejectSpool
from schemas.errors import NotFound, SibiaoError
from schemas.tables import load_batches


def create(
    engine: Engine,
    *,
    layer: str,
    mode: str,
    file_name: str | None,
    user: str | None,
    district: str,
    state: str = "queued",
) -> int:
    """Record a new batch; return its id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(load_batches)
                .values(
                    layer_code=layer,
                    mode=mode,
                    file_name=file_name,
                    user_name=user,
                    district_code=district,
                    state=state,
                )
                .returning(load_batches.c.id)
            ).scalar_one()
        )


def start(
    engine: Engine,
    batch_id: int,
    *,
    sha256: str | None,
    source_crs: str,
    source_format: str,
    expected: int | None,
    options: dict[str, Any],
) -> None:
    """Mark a batch running, with what is known of its file (``sha256`` may come later)."""
    with engine.begin() as conn:
        conn.execute(
            update(load_batches)
            .where(load_batches.c.id == batch_id)
            .values(
                state="running",
                sha256=sha256,
                source_crs=source_crs,
                source_format=source_format,
                expected_rows=expected,
                options=json.loads(json.dumps(options, default=str)),
                updated_at=text("now()"),
            )
        )


def note_backend(conn: Connection, engine: Engine, batch_id: int) -> None:
    """Record which server process runs the load (to spot loads whose process died)."""
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.begin() as other:
        other.execute(
            text(
                "UPDATE load_batches SET options = coalesce(options, '{}'::jsonb) || "
                "jsonb_build_object('backend_pid', :pid) WHERE id = :id"
            ),
            {"pid": pid, "id": batch_id},
        )


def progress(engine: Engine, batch_id: int, read: int, loaded: int, rejected: int) -> None:
    """Publish progress counts (own short transaction)."""
    with engine.begin() as conn:
        conn.execute(
            update(load_batches)
            .where(load_batches.c.id == batch_id)
            .values(
                read_count=read,
                loaded_count=loaded,
                rejected_count=rejected,
                updated_at=text("now()"),
            )
        )


def commit(
    conn: Connection,
    batch_id: int,
    *,
    version: int,
    read: int,
    loaded: int,
    rejected: int,
    repaired: list[int],
    sha256: str | None = None,
) -> None:
    """Mark a batch committed (inside the load's transaction); keep the repaired rows."""
    extra = {} if sha256 is None else {"sha256": sha256}
    conn.execute(
        update(load_batches)
        .where(load_batches.c.id == batch_id)
        .values(
            **extra,
            state="committed",
            version=version,
            read_count=read,
            loaded_count=loaded,
            rejected_count=rejected,
            repaired_count=len(repaired),
            finished_at=text("now()"),
            updated_at=text("now()"),
            message=None,
            options=load_batches.c.options.op("||")(
                text("jsonb_build_object('repaired_rows', CAST(:rows AS jsonb))").bindparams(
                    rows=json.dumps(repaired[:10000])
                )
            ),
        )
    )


def fail(
    engine: Engine,
    batch_id: int,
    exc: BaseException,
    read: int,
    spool: RejectSpool | None = None,
    sha256: str | None = None,
) -> None:
    """Mark a batch failed with a message fit for a user; keep its rejects for the report."""
    message = (
        exc.message
        if isinstance(exc, SibiaoError)
        else (
            "interrupted"
            if isinstance(exc, KeyboardInterrupt)
            else f"internal error ({type(exc).__name__}); the layer keeps its previous version"
        )
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                update(load_batches)
                .where(load_batches.c.id == batch_id)
                .values(
                    **({} if sha256 is None else {"sha256": sha256}),
                    state="failed",
                    message=message,
                    read_count=read,
                    finished_at=text("now()"),
                    updated_at=text("now()"),
                )
            )
            if spool is not None and spool.count:
                district = conn.execute(
                    select(load_batches.c.district_code).where(load_batches.c.id == batch_id)
                ).scalar_one()
                conn.execute(text("DELETE FROM load_rejects WHERE batch_id = :b"), {"b": batch_id})
                spool.store(conn, batch_id, district)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def reap_stale(engine: Engine) -> int:
    """Mark running batches whose server process is gone as failed; return how many."""
    with engine.begin() as conn:
        result = conn.execute(
            text(
                "UPDATE load_batches SET state = 'failed', finished_at = now(), updated_at = now(),"
                " message = 'interrupted: the loading process stopped; the layer kept its previous"
                " version' WHERE state = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
                " WHERE a.pid = (load_batches.options->>'backend_pid')::int)"
                " AND updated_at < now() - interval '5 seconds'"
            )
        )
        return int(result.rowcount or 0)


def get(conn: Connection, batch_id: int) -> dict[str, Any]:
    """Return a batch as a dict, or raise NotFound."""
    row = conn.execute(select(load_batches).where(load_batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise NotFound(f"no load {batch_id}")
    return dict(row)


def recent(conn: Connection, *, layer: str, limit: int) -> list[dict[str, Any]]:
    """Return a layer's latest batches, newest first."""
    rows = conn.execute(
        select(load_batches)
        .where(load_batches.c.layer_code == layer)
        .order_by(load_batches.c.id.desc())
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]

"""Loads that run in the background of the API process, one at a time per worker."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine

from ingest import batches
from ingest.pipeline import MODES, LoadRequest, run_load
from schemas.catalog import Catalog
from schemas.errors import InvalidInput, NotFound, SibiaoError
from schemas.settings import Settings

log = logging.getLogger("sibiao.ingest")
CHUNK = 2**20


def safe_name(name: str | None) -> str:
    """Return an upload's file name without folders or odd characters."""
    base = Path((name or "upload").replace("\\", "/")).name.strip() or "upload"
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in base)[:120]


class LoadJobs:
    """Accept uploads, record their batches, and load them on worker threads."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        catalog: Catalog,
        *,
        workers: int = 1,
        on_published: Callable[[str], None] | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.catalog = catalog
        self.on_published = on_published
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sibiao-load")
        self._futures: dict[int, Future[None]] = {}

    def submit(
        self,
        *,
        layer: str,
        stream: BinaryIO,
        file_name: str | None,
        mode: str,
        source_crs: str | None,
        field_map: dict[str, str],
        user: str | None,
    ) -> int:
        """Store an upload and queue its load; return the batch id."""
        if not self.catalog.has_layer(layer):
            raise NotFound(f"no layer {layer!r} in the catalog")
        if mode not in MODES:
            raise InvalidInput(f"mode {mode!r}: choose replace, append or upsert")
        folder = self.settings.data_dir / "uploads" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        target = folder / safe_name(file_name)
        size = 0
        with target.open("wb") as out:
            while block := stream.read(CHUNK):
                size += len(block)
                if size > self.settings.max_upload_bytes:
                    out.close()
                    shutil.rmtree(folder, ignore_errors=True)
                    raise InvalidInput(
                        f"{target.name}: larger than the upload limit of "
                        f"{self.settings.max_upload_bytes // 2**20} MiB"
                    )
                out.write(block)
        batch_id = batches.create(
            self.engine,
            layer=layer,
            mode=mode,
            file_name=target.name,
            user=user,
            district=self.settings.district_code,
        )
        request = LoadRequest(
            path=target,
            layer=layer,
            mode=mode,
            source_crs=source_crs,
            field_map=field_map,
            user=user,
            file_name=target.name,
        )
        self._futures[batch_id] = self._pool.submit(self._run, request, batch_id, folder)
        return batch_id

    def _run(self, request: LoadRequest, batch_id: int, folder: Path) -> None:
        try:
            if self.catalog.layer(request.layer).is_raster:
                from ingest.rasters import load_raster

                load_raster(self.engine, self.settings, self.catalog, request, batch_id=batch_id)
            else:
                run_load(self.engine, self.settings, self.catalog, request, batch_id=batch_id)
            if self.on_published is not None:
                self.on_published(request.layer)
        except SibiaoError as exc:
            log.info("load %s of %s refused: %s", batch_id, request.layer, exc)
            self._fail_if_queued(batch_id, exc)
        except Exception as exc:  # noqa: BLE001 - recorded on the batch; the worker must survive
            log.exception("load %s of %s failed", batch_id, request.layer)
            self._fail_if_queued(batch_id, exc)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._futures.pop(batch_id, None)

    def _fail_if_queued(self, batch_id: int, exc: BaseException) -> None:
        """Mark failed a batch refused before it started (unreadable file, unknown CRS)."""
        with self.engine.connect() as conn:
            queued = batches.get(conn, batch_id)["state"] == "queued"
        if queued:
            batches.fail(self.engine, batch_id, exc, 0)

    def wait(self, batch_id: int, timeout: float | None = None) -> None:
        """Block until a load finishes (tests and scripts)."""
        future = self._futures.get(batch_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        """Stop accepting work; let running loads finish."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def batch_status(engine: Engine, batch_id: int) -> dict[str, object]:
    """Return a batch's state and progress for ``GET /loads/{id}``."""
    with engine.connect() as conn:
        row = batches.get(conn, batch_id)
    return _status(row)


def layer_loads(
    engine: Engine, catalog: Catalog, layer: str, *, limit: int
) -> list[dict[str, Any]]:
    """Return the state and counts of a layer's latest loads, newest first."""
    if not catalog.has_layer(layer):
        raise NotFound(f"no layer {layer!r} in the catalog")
    with engine.connect() as conn:
        rows = batches.recent(conn, layer=layer, limit=limit)
    return [_status(row) for row in rows]


def _status(row: dict[str, Any]) -> dict[str, Any]:
    """Shape a ``load_batches`` row as the API shows a load."""
    expected = row.get("expected_rows")
    read = int(row.get("read_count") or 0)
    done = row["state"] in ("committed", "failed")
    percent = 100.0 if done else (round(100.0 * read / expected, 1) if expected else None)
    return {
        "id": row["id"],
        "layer": row["layer_code"],
        "state": row["state"],
        "mode": row["mode"],
        "file_name": row["file_name"],
        "sha256": row["sha256"],
        "source_crs": row["source_crs"],
        "source_format": row["source_format"],
        "progress": {"read": read, "expected": expected, "percent": percent},
        "read": read,
        "loaded": int(row.get("loaded_count") or 0),
        "rejected": int(row.get("rejected_count") or 0),
        "repaired": int(row.get("repaired_count") or 0),
        "version": row["version"],
        "message": row["message"],
        "user": row["user_name"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }

"""Back up and restore the platform: a pg_dump of the database plus the COG raster files.

A backup is one tar file holding

- ``manifest.json``: when, from which database, and for every table (platform tables, one per
  layer, the kept versions) its row count and a checksum of its rows; for every raster file
  its path (relative to the data folder) and sha256;
- ``database.dump``: ``pg_dump --format=custom`` of the database (staging tables' rows left out);
- ``rasters/…``: the Cloud-Optimised GeoTIFFs that ``raster_versions`` points at.

The manifest and the dump read the same snapshot (``pg_export_snapshot`` handed to
``pg_dump --snapshot``), so they agree even while cases keep arriving. A restore goes into an
empty database (or replaces a non-empty one with ``force``), puts the rasters back, and checks
every count and checksum against the manifest. The checksum of a table is the md5 of its rows'
md5s in order, each row as PostgreSQL prints it (session time zone UTC).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from schemas.embedded import find_install
from schemas.errors import Conflict, DatabaseError, InvalidInput

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
DUMP: Final = "database.dump"
RASTERS: Final = "rasters"
#: Schemas whose tables are not backed up as data (rebuilt by every load).
_SKIPPED_SCHEMAS: Final = ("pg_catalog", "information_schema", "staging", "tiger", "topology")


class TableSummary(BaseModel):
    """Rows and checksum of one table."""

    rows: int
    checksum: str


class RasterFile(BaseModel):
    """One raster file of the backup."""

    path: str
    sha256: str


class Manifest(BaseModel):
    """What a backup holds, to check a restore against."""

    format: int = FORMAT
    created_at: datetime
    database: str
    tables: dict[str, TableSummary]
    rasters: list[RasterFile]


class Restored(BaseModel):
    """What a restore put back and what did not match the manifest (empty = all)."""

    database: str
    tables: int
    rows: int
    rasters: int
    mismatches: list[str]


def pg_tool(name: str, pg_bin: Path | None = None) -> Path:
    """Return the path of a PostgreSQL client program (pg_dump, pg_restore)."""
    install = find_install(pg_bin)
    if install is not None and (install.bindir / name).exists():
        return install.bindir / name
    found = shutil.which(name)
    if found is None:
        raise DatabaseError(f"{name} is not installed: apt-get install postgresql-client")
    return Path(found)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """Return a libpq URL without the password, and the environment carrying it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=6 * 3600)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DatabaseError(f"{what} failed: {lines[-1] if lines else 'no output'}")


def table_names(conn: Connection) -> list[str]:
    """Return the user tables of the database as ``schema.table``, sorted."""
    rows = conn.execute(
        text(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname <> ALL(:skipped) AND n.nspname NOT LIKE 'pg_%' "
            "AND NOT (n.nspname = 'public' AND c.relname = 'spatial_ref_sys') "
            "ORDER BY 1, 2"
        ),
        {"skipped": list(_SKIPPED_SCHEMAS)},
    )
    return [f"{schema}.{table}" for schema, table in rows]


def summarise(conn: Connection) -> dict[str, TableSummary]:
    """Return the row count and checksum of every user table."""
    conn.execute(text("SET LOCAL timezone = 'UTC'"))
    out: dict[str, TableSummary] = {}
    for name in table_names(conn):
        schema, table = name.split(".", 1)
        quoted = f'"{schema}"."{table}"'
        rows, digest = conn.execute(
            text(
                "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') "
                f"FROM (SELECT md5(t::text) AS h FROM {quoted} t) x"
            )
        ).one()
        out[name] = TableSummary(rows=int(rows), checksum=str(digest))
    return out


def _raster_rows(conn: Connection) -> list[RasterFile]:
    if conn.execute(text("SELECT to_regclass('public.raster_versions')")).scalar() is None:
        return []
    rows = conn.execute(text("SELECT path, sha256 FROM raster_versions ORDER BY path"))
    return [RasterFile(path=str(path), sha256=str(sha)) for path, sha in rows]


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def dump(url: URL, data_dir: Path, target: Path, *, pg_bin: Path | None = None) -> Manifest:
    """Write a backup of the database at ``url`` and its raster files to ``target`` (a tar)."""
    libpq, env = _libpq(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            manifest = Manifest(
                created_at=datetime.now(UTC),
                database=str(url.database),
                tables=summarise(conn),
                rasters=_raster_rows(conn),
            )
            for raster in manifest.rasters:
                if not (data_dir / raster.path).is_file():
                    raise DatabaseError(f"raster file {data_dir / raster.path} is missing")
            with tempfile.TemporaryDirectory(prefix="sibiao-dump-") as tmp:
                dumped = Path(tmp) / DUMP
                args = [str(pg_tool("pg_dump", pg_bin)), "--format=custom", f"--file={dumped}"]
                args += [f"--snapshot={snapshot}", "--exclude-table-data=staging.*", libpq]
                _run(args, env, "pg_dump")
                conn.commit()
                _write_archive(target, manifest, dumped, data_dir)
    finally:
        engine.dispose()
    return manifest


def _write_archive(target: Path, manifest: Manifest, dumped: Path, data_dir: Path) -> None:
    """Write the tar beside ``target`` and move it into place when complete."""
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(partial, "w") as tar:
            body = manifest.model_dump_json(indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            info.mtime = int(manifest.created_at.timestamp())
            with tempfile.SpooledTemporaryFile() as buffer:
                buffer.write(body)
                buffer.seek(0)
                tar.addfile(info, buffer)
            tar.add(dumped, arcname=DUMP)
            for raster in manifest.rasters:
                tar.add(data_dir / raster.path, arcname=f"{RASTERS}/{raster.path}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def read_manifest(archive: Path) -> Manifest:
    """Return the manifest of a backup, or raise InvalidInput when it is not one."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = Manifest.model_validate(json.loads(member.read()))
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise InvalidInput(f"{archive} is not a Sibiao backup ({exc})") from None
    if manifest.format != FORMAT:
        raise InvalidInput(f"{archive} is backup format {manifest.format}, not {FORMAT}")
    return manifest


@contextmanager
def _engine(url: URL, **kwargs: object) -> Iterator[Connection]:
    engine = create_engine(url, poolclass=NullPool, **kwargs)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _prepare_target(maintenance: URL, database: str, *, force: bool) -> None:
    """Create ``database`` bare; refuse to replace one holding tables unless ``force``."""
    with _engine(maintenance, isolation_level="AUTOCOMMIT") as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
        ).scalar()
    if exists:
        with _engine(maintenance.set(database=database)) as conn:
            tables = table_names(conn)
        if tables and not force:
            raise Conflict(
                f"database {database} is not empty ({len(tables)} tables): restore into an "
                "empty database, or add --force to replace it and all its data"
            )
    with _engine(maintenance, isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{database}"'))


def _put_rasters(tar: tarfile.TarFile, manifest: Manifest, data_dir: Path) -> None:
    """Extract the raster files into ``data_dir`` (checked against the manifest)."""
    if not manifest.rasters:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as tmp:
        for raster in manifest.rasters:
            tar.extract(f"{RASTERS}/{raster.path}", tmp, filter="data")
            extracted = Path(tmp) / RASTERS / raster.path
            if _sha256(extracted) != raster.sha256:
                raise DatabaseError(f"raster {raster.path} in the backup is damaged")
            placed = (data_dir / raster.path).resolve()
            if not placed.is_relative_to(data_dir.resolve()):
                raise InvalidInput(f"raster path {raster.path} leaves the data folder")
            placed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted, placed)


def restore(
    archive: Path,
    maintenance: URL,
    database: str,
    data_dir: Path,
    *,
    force: bool = False,
    pg_bin: Path | None = None,
) -> Restored:
    """Restore a backup into ``database`` (created bare) and ``data_dir``; check it."""
    manifest = read_manifest(archive)
    _prepare_target(maintenance, database, force=force)
    target = maintenance.set(database=database)
    libpq, env = _libpq(target)
    with tarfile.open(archive) as tar, tempfile.TemporaryDirectory(prefix="sibiao-") as tmp:
        tar.extract(DUMP, tmp, filter="data")
        args = [str(pg_tool("pg_restore", pg_bin)), "--no-owner", "--no-privileges"]
        args += ["--exit-on-error", f"--dbname={libpq}", str(Path(tmp) / DUMP)]
        _run(args, env, "pg_restore")
        _put_rasters(tar, manifest, data_dir)
    with _engine(target) as conn, conn.begin():
        found = summarise(conn)
    mismatches = [
        f"{name}: expected {want.rows} rows ({want.checksum[:8]}), found "
        + (f"{got.rows} rows ({got.checksum[:8]})" if (got := found.get(name)) else "no table")
        for name, want in manifest.tables.items()
        if found.get(name) != want
    ]
    mismatches += [f"{name}: not in the backup" for name in found if name not in manifest.tables]
    mismatches += [
        f"raster {r.path}: missing or altered"
        for r in manifest.rasters
        if not (data_dir / r.path).is_file() or _sha256(data_dir / r.path) != r.sha256
    ]
    return Restored(
        database=database,
        tables=len(found),
        rows=sum(s.rows for s in found.values()),
        rasters=len(manifest.rasters),
        mismatches=mismatches,
    )

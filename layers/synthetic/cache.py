"""A disk cache of what every run of a seed computes the same at any scale: admin and terrain.

The administrative partition (a raster partition polygonised) and the terrain (DEM, rivers) take
seconds and depend only on the seed, the generator's code and data files and the geometry
libraries, so they are kept as pickles named by a digest of all of those: a change to any file of
``layers/synthetic`` (or of the division list, or a library upgrade) makes a new entry, never a
stale one, and the entry it replaces is deleted (one per name and seed). Nothing is downloaded.
The folder is ``$SIBIAO_GENERATOR_CACHE`` (``off`` disables the cache), else
``$XDG_CACHE_HOME/sibiao/generator`` (``~/.cache/sibiao/generator``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
import rasterio
import shapely

ENV: Final = "SIBIAO_GENERATOR_CACHE"
PACKAGE: Final = Path(__file__).parent
#: Files whose content decides what admin and terrain are (besides the seed).
_SOURCES: Final = ("*.py", "*.yaml", "assets/*.py", "../data/huadu_divisions.csv")

T = TypeVar("T")
log = logging.getLogger(__name__)


def cache_dir() -> Path | None:
    """Return the cache folder, or None when caching is off."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sibiao" / "generator"


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """Return a digest of the generator's code, data files and geometry library versions."""
    digest = hashlib.sha256()
    for version in (np.__version__, shapely.__version__, shapely.geos_version_string):
        digest.update(version.encode())
    digest.update(rasterio.__version__.encode() + rasterio.__gdal_version__.encode())
    for pattern in _SOURCES:
        for path in sorted(PACKAGE.glob(pattern)):
            digest.update(path.relative_to(PACKAGE.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached(name: str, seed: int, extra: str, build: Callable[[], T]) -> T:
    """Return ``build()`` for this seed, from the cache when an identical run stored it."""
    folder = cache_dir()
    if folder is None:
        return build()
    key = hashlib.sha256(f"{name}|{seed}|{extra}|{_code_digest()}".encode()).hexdigest()[:24]
    path = folder / f"{name}-{seed}-{key}.pickle"
    try:
        with path.open("rb") as fh:
            value: T = pickle.load(fh)  # noqa: S301 - our own files, named by their content
        return value
    except FileNotFoundError:
        pass
    except Exception as exc:  # a damaged entry: rebuild and overwrite it
        log.warning("ignoring unreadable cache entry %s: %s", path, exc)
    value = build()
    scratch: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}-", delete=False) as fh:
            scratch = Path(fh.name)
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(scratch, path)
        for stale in folder.glob(f"{name}-{seed}-*.pickle"):  # made by other code: drop
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:  # a read-only home: run without the cache
        log.warning("cannot write cache entry %s: %s", path, exc)
        if scratch is not None:
            scratch.unlink(missing_ok=True)
    return value

"""Raster layers (COGs) as coloured PNG map tiles of the WebMercatorQuad matrix set.

A tile is read with rio-tiler (:class:`rio_tiler.io.Reader`): only the window of the tile,
from the COG's overview that fits the zoom, warped to Web Mercator (a ``WarpedVRT``), with
the nodata pixels masked. Its values are then coloured by the layer's ramp in
``layers/data/raster_ramps.yaml`` (reviewed data, checked by :class:`RampFile`):

- ``linear`` (the DEM): colours interpolated between the stops, through a 256-entry
  colour map over the stops' range; bilinear resampling;
- ``classes`` (flood risk): one colour per class value; nearest resampling.

Nodata is transparent. A tile outside the raster's extent is a transparent tile
(:func:`empty_tile`). Tile coordinates outside the matrix set raise InvalidInput.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.catalog import Layer
from schemas.errors import CatalogError, InvalidInput, NotFound

RAMPS_YAML: Final = Path(__file__).resolve().parent / "data" / "raster_ramps.yaml"
TMS_ID: Final = "WebMercatorQuad"
TILE_SIZE: Final = 256
MAX_ZOOM: Final = 22
COLOUR: Final = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
RGBA = tuple[int, int, int, int]


class Stop(BaseModel):
    """A value and its colour (and an optional legend label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    color: str
    label: str | None = None

    @field_validator("color")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not COLOUR.match(value):
            raise ValueError(f"{value!r} is not #rrggbb or #rrggbbaa")
        return value.lower()

    @property
    def rgba(self) -> RGBA:
        """Return the colour as (r, g, b, a), 0..255."""
        text = self.color[1:] + ("ff" if len(self.color) == 7 else "")
        r, g, b, a = (int(text[i : i + 2], 16) for i in range(0, 8, 2))
        return (r, g, b, a)


class Ramp(BaseModel):
    """A raster layer's colour ramp."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["linear", "classes"]
    unit: str | None = None
    stops: tuple[Stop, ...] = Field(min_length=2)

    @field_validator("stops")
    @classmethod
    def _ascending(cls, stops: tuple[Stop, ...]) -> tuple[Stop, ...]:
        values = [s.value for s in stops]
        if values != sorted(values) or len(set(values)) != len(values):
            raise ValueError("stop values must be distinct and ascending")
        return stops

    @property
    def resampling(self) -> Literal["nearest", "bilinear"]:
        """Return the resampling that keeps this ramp's meaning."""
        return "bilinear" if self.kind == "linear" else "nearest"

    def legend(self) -> list[dict[str, Any]]:
        """Return the labelled stops: value, label, colour (#rrggbbaa)."""
        return [
            {"value": s.value, "label": s.label, "color": s.color} for s in self.stops if s.label
        ]


class RampFile(BaseModel):
    """The ramps file: a version (part of the tiles' ETags) and a ramp per layer code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    ramps: dict[str, Ramp]


@functools.cache
def load_ramps(path: Path = RAMPS_YAML) -> RampFile:
    """Return the checked ramps file; raise CatalogError saying what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return RampFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise CatalogError(f"{path.name}: {exc}") from None


def ramp_for(layer: Layer, ramps: RampFile | None = None) -> Ramp:
    """Return a raster layer's ramp; raise NotFound when it has none (no tiles then)."""
    ramps = ramps or load_ramps()
    ramp = ramps.ramps.get(layer.code)
    if ramp is None:
        raise NotFound(f"raster layer {layer.code} has no colour ramp, so no tiles")
    return ramp


def check_tile(z: int, y: int, x: int) -> None:
    """Raise InvalidInput unless (z, y, x) is a tile of WebMercatorQuad up to MAX_ZOOM."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom {z} is outside 0..{MAX_ZOOM}")
    side = 1 << z
    if not (0 <= x < side and 0 <= y < side):
        raise InvalidInput(f"tile {z}/{y}/{x} is outside the matrix (0..{side - 1} at zoom {z})")


def parse_tile(z: str, y: str, x: str) -> tuple[int, int, int]:
    """Return (z, y, x) from path text; raise InvalidInput for anything but small integers."""
    values = []
    for name, text in (("zoom", z), ("row", y), ("column", x)):
        if not (text.isascii() and text.isdigit() and len(text) <= 8):
            raise InvalidInput(f"tile {name} {text[:20]!r} is not a whole number")
        values.append(int(text))
    zi, yi, xi = values
    check_tile(zi, yi, xi)
    return zi, yi, xi


def colour_map(ramp: Ramp) -> dict[int, RGBA]:
    """Return the 256-entry colour map of a ramp (linear: over the stops' range)."""
    if ramp.kind == "classes":
        found = {int(s.value): s.rgba for s in ramp.stops if 0 <= s.value <= 255}
        return {i: found.get(i, (0, 0, 0, 0)) for i in range(256)}
    values = np.array([s.value for s in ramp.stops], dtype=np.float64)
    colours = np.array([s.rgba for s in ramp.stops], dtype=np.float64)
    at = np.linspace(values[0], values[-1], 256)
    channels = [np.interp(at, values, colours[:, c]) for c in range(4)]
    return {i: tuple(int(round(ch[i])) for ch in channels) for i in range(256)}  # type: ignore[misc]


def colour_index(values: np.ndarray, ramp: Ramp) -> np.ndarray:
    """Return the uint8 colour-map index of raster values (linear: scaled over the stops)."""
    if ramp.kind == "classes":
        inside = (values >= 0) & (values <= 255) & np.isfinite(values)
        return np.where(inside, values, 0).astype(np.uint8)
    low, high = ramp.stops[0].value, ramp.stops[-1].value
    scaled = (np.nan_to_num(values.astype(np.float64), nan=low) - low) / (high - low) * 255
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def colourise(values: np.ndarray, valid: np.ndarray, ramp: Ramp) -> np.ndarray:
    """Return RGBA (4, h, w) uint8 of one band's values; invalid pixels are transparent."""
    from rio_tiler.colormap import apply_cmap

    if ramp.kind == "classes":
        known = np.isin(values, [s.value for s in ramp.stops])
        valid = valid & known
    rgb, alpha = apply_cmap(colour_index(values, ramp)[np.newaxis], colour_map(ramp))
    alpha = np.where(valid, alpha, 0).astype(np.uint8)
    return np.concatenate([rgb.astype(np.uint8), alpha[np.newaxis]])


def encode_png(rgba: np.ndarray) -> bytes:
    """Return an RGBA array (4, h, w) as PNG bytes."""
    from rio_tiler.utils import render

    return render(rgba[:3], mask=rgba[3], img_format="PNG")


@functools.cache
def empty_tile(size: int = TILE_SIZE) -> bytes:
    """Return a fully transparent PNG tile."""
    return encode_png(np.zeros((4, size, size), dtype=np.uint8))


def render_tile(path: Path, *, ramp: Ramp, z: int, y: int, x: int) -> bytes:
    """Return the PNG tile (z, y, x) of the COG at ``path``, coloured by ``ramp``.

    Parameters
    ----------
    path
        The COG (any CRS; read through a WarpedVRT to Web Mercator).
    ramp
        The layer's colour ramp (:func:`ramp_for`).
    z, y, x
        A WebMercatorQuad tile (checked by :func:`check_tile`).

    Returns
    -------
    bytes
        A 256x256 RGBA PNG; nodata and areas outside the raster are transparent.
    """
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    check_tile(z, y, x)
    if not path.is_file():
        raise NotFound(f"the raster file {path.name} is missing; reload the layer")
    with Reader(str(path)) as src:
        if not src.tile_exists(x, y, z):
            return empty_tile()
        try:
            image = src.tile(
                x,
                y,
                z,
                tilesize=TILE_SIZE,
                indexes=1,
                resampling_method=ramp.resampling,
                reproject_method=ramp.resampling,
            )
        except TileOutsideBounds:
            return empty_tile()
    band = image.array[0]
    valid = ~np.ma.getmaskarray(band)
    values = np.ma.getdata(band)
    if not valid.any():
        return empty_tile()
    return encode_png(colourise(values, valid, ramp))


def tile_etag(*, layer: str, version: int, sha256: str, z: int, y: int, x: int) -> str:
    """Return the strong ETag of a tile: layer version, file hash, ramps version, tile."""
    ramps = load_ramps().version
    key = f"{layer}:{version}:{sha256}:{ramps}:{z}/{y}/{x}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'

"""Settings from the environment (prefix ``SIBIAO_``) or explicit arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The secret shipped for the localhost demo; ``sibiao serve`` refuses it on other addresses.
DEMO_SECRET_KEY = "sibiao-demo-secret-for-localhost-only"


class Settings(BaseSettings):
    """Everything the platform can be told; every field is ``SIBIAO_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SIBIAO_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL+PostGIS URL; unset = run the embedded cluster in data_dir/pg",
    )
    data_dir: Path = Field(
        default=Path(".sibiao"), description="project data folder (embedded cluster, COGs, uploads)"
    )
    database_name: str = Field(
        default="sibiao",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="database created in the embedded cluster",
    )
    pg_port: int | None = Field(
        default=None, ge=1024, le=65535, description="embedded cluster port; unset = a free one"
    )
    pg_bin: Path | None = Field(
        default=None, description="folder with initdb/pg_ctl; unset = the newest one installed"
    )
    catalog_dir: Path | None = Field(
        default=None, description="folder of layer catalog YAML files; unset = the packaged one"
    )
    storage_epsg: int = Field(default=4490, description="CRS of every stored geometry (CGCS2000)")
    district_code: str = Field(
        default="440114", pattern=r"^\d{6}$", description="the district this instance serves"
    )
    district_extent: tuple[float, float, float, float] = Field(
        default=(113.03, 23.24, 113.47, 23.62),
        description="lon/lat extent used to judge coordinates before the boundary is loaded",
    )
    extent_margin_deg: float = Field(
        default=0.02, ge=0, description="margin around the district extent (degrees)"
    )
    max_upload_bytes: int = Field(
        default=2 * 2**30, ge=2**20, description="largest file an analyst may upload"
    )
    keep_versions: int = Field(default=3, ge=1, description="earlier layer versions kept")
    host: str = Field(default="127.0.0.1", description="address `sibiao serve` binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port `sibiao serve` binds")
    log_level: str = Field(default="info", description="debug, info, warning or error")
    escalation_interval_s: float = Field(
        default=0, ge=0, description="seconds between the API's escalation ticks; 0 = off"
    )
    basemap: Literal["platform", "tianditu", "amap", "tencent"] = Field(
        default="platform",
        description="base map of the map pages: the platform's own layers (vector tiles, offline); "
        "tianditu (CGCS2000, needs tianditu_key); amap or tencent (GCJ-02: overlays are shifted)",
    )
    tianditu_key: str | None = Field(
        default=None, description="Tianditu token (tk), needed when basemap is tianditu"
    )
    auth_enabled: bool = Field(
        default=True,
        description="require credentials as api/policy.yaml says; off only for tests and local "
        "experiments (every route open, nothing audited)",
    )
    secret_key: str = Field(
        default=DEMO_SECRET_KEY,
        repr=False,
        description="signs access tokens; the demo default is refused off loopback "
        "(docs/security.md)",
    )
    token_minutes: int = Field(
        default=480, ge=1, le=7 * 24 * 60, description="lifetime of an access token (minutes)"
    )

    @field_validator("database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def pg_dir(self) -> Path:
        """Return the folder of the embedded PostgreSQL cluster."""
        return self.data_dir / "pg"

    @property
    def embedded(self) -> bool:
        """Return whether the platform runs its own database cluster."""
        return self.database_url is None

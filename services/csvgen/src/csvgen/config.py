"""Settings of the service, read from the environment (CSVGEN_HOST, CSVGEN_PORT, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from csvgen.errors import MilanoError

PACKAGED_DATA = Path(__file__).parent / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSVGEN_", extra="ignore", case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(8070, gt=0, lt=65536)
    log_level: str = "info"
    # Milano CDR files the service may read; requests name them without a directory
    data_dir: Path = PACKAGED_DATA
    # POST /generate refuses scenarios with more expected rows than this
    max_rows: int = Field(100_000_000, gt=0)
    # defects listed in a validation report (all of them are counted)
    max_defects: int = Field(1000, ge=0)
    # the bearer token of every POST (they cost CPU); the one name of all services, API_TOKEN,
    # not CSVGEN_API_TOKEN; unset: the POSTs answer 503
    api_token: str | None = Field(None, validation_alias="API_TOKEN")

    def data_file(self, name: str) -> Path:
        """A file of data_dir by its bare name (no directories, so requests stay inside it)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise MilanoError(f"{name!r}: give a file name from the data directory, no path")
        path = self.data_dir / name
        if not path.is_file():
            available = sorted(
                p.name for p in self.data_dir.glob("*") if p.is_file() and p.suffix != ".md"
            )
            raise MilanoError(
                f"{name!r} is not in the data directory (CSVGEN_DATA_DIR); it holds: "
                + (", ".join(available) or "nothing")
            )
        return path

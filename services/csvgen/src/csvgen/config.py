"""Settings of the service, read from the environment (CSVGEN_HOST, CSVGEN_PORT, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from scenario_gen.errors import MilanoError
from service_kit import ServiceSettings

PACKAGED_DATA = Path(__file__).parent / "data"


class Settings(ServiceSettings):
    # each field is read from its name in capitals (service_kit, docs/configuration.md)
    listen_fields = ("csvgen_host", "csvgen_port")

    csvgen_host: str = "127.0.0.1"
    csvgen_port: int = Field(8070, gt=0, lt=65536)
    csvgen_log_level: str = "info"
    # Milano CDR files the service may read; requests name them without a directory
    csvgen_data_dir: Path = PACKAGED_DATA
    # POST /generate refuses scenarios with more expected rows than this
    csvgen_max_rows: int = Field(100_000_000, gt=0)
    # defects listed in a validation report (all of them are counted)
    csvgen_max_defects: int = Field(1000, ge=0)
    # the bearer token of every POST (they cost CPU); the one name of all services, API_TOKEN,
    # not CSVGEN_API_TOKEN; unset: the POSTs answer 503
    api_token: str | None = None

    def data_file(self, name: str) -> Path:
        """A file of CSVGEN_DATA_DIR by its bare name (no directories: requests stay inside)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise MilanoError(f"{name!r}: give a file name from the data directory, no path")
        path = self.csvgen_data_dir / name
        if not path.is_file():
            available = sorted(
                p.name for p in self.csvgen_data_dir.glob("*") if p.is_file() and p.suffix != ".md"
            )
            raise MilanoError(
                f"{name!r} is not in the data directory (CSVGEN_DATA_DIR); it holds: "
                + (", ".join(available) or "nothing")
            )
        return path

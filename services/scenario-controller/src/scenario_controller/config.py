"""Settings from the environment (the same names locally, in compose and in the chart)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from service_kit import ServiceSettings

_STATE = Path.home() / ".local" / "state" / "ims-testbed" / "scenario-controller"


class Settings(ServiceSettings):
    # each field is read from its name in capitals (service_kit, docs/configuration.md)
    listen_fields = ("scenario_controller_host", "scenario_controller_port")

    scenario_controller_host: str = "127.0.0.1"
    scenario_controller_port: int = Field(8001, gt=0, lt=65536)
    scenario_dir: Path = _STATE / "scenarios"
    runs_dir: Path = _STATE / "runs"
    # where to cross-check registrations (GET /registrations); empty: do not
    sip_controller_url: str = "http://127.0.0.1:8000"
    pairing_convention: bool = Field(True, description="enforce even pod -> next odd pod on upload")
    default_hold_ms: int = Field(0, ge=0)
    progress_interval_seconds: float = Field(1.0, gt=0)
    log_level: str = "info"
    # samples of a pushed experiment kept for the panel (an hour at one a second)
    experiment_keep_rows: int = Field(3600, ge=10, le=100_000)
    # a recorded experiment (JSON, the ExperimentRecord model) to show read-only instead of a
    # pushed one: `testbed view RESULTS` sets it
    experiment_replay: Path | None = None
    # the bearer token of every mutating route and of /ws/clients (env API_TOKEN); unset:
    # those are refused (503, WebSocket 1008), never open
    api_token: str | None = None

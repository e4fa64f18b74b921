"""FastAPI dependencies: settings and metrics live on app.state, set in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from csvgen.config import Settings
from csvgen.metrics import CsvgenMetrics


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> CsvgenMetrics:
    metrics: CsvgenMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[CsvgenMetrics, Depends(get_metrics)]

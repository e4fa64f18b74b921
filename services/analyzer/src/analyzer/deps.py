"""FastAPI dependencies: everything lives on app.state, created in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from analyzer.analysis import Analyzer
from analyzer.config import Settings
from analyzer.runner import CaptureRunner
from analyzer.samples import SampleStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_samples(request: Request) -> SampleStore:
    samples: SampleStore = request.app.state.samples
    return samples


def get_analyzer(request: Request) -> Analyzer:
    analyzer: Analyzer = request.app.state.analyzer
    return analyzer


def get_runner(request: Request) -> CaptureRunner:
    runner: CaptureRunner = request.app.state.runner
    return runner


SettingsDep = Annotated[Settings, Depends(get_settings)]
SamplesDep = Annotated[SampleStore, Depends(get_samples)]
AnalyzerDep = Annotated[Analyzer, Depends(get_analyzer)]
RunnerDep = Annotated[CaptureRunner, Depends(get_runner)]

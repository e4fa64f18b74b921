from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from analyzer import __version__
from analyzer.deps import AnalyzerDep, RunnerDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(settings: SettingsDep, analyzer: AnalyzerDep, runner: RunnerDep) -> JSONResponse:
    """200 while the capture runs (or a file was read to its end); 503 once it failed."""
    capture = runner.stats()
    stats, open_entries, _ = analyzer.snapshot()
    failed = capture.error is not None or (capture.live and not runner.running)
    body = {
        "status": "unhealthy" if failed else "ok",
        "version": __version__,
        "proxy": settings.proxy_label,
        "proxy_address": settings.analyzer_proxy_address,
        "capture": capture.as_dict(),
        "pairs": dict(stats.pairs),
        "open_entries": open_entries,
        "skipped": dict(stats.skipped),
    }
    return JSONResponse(body, status_code=503 if failed else 200)

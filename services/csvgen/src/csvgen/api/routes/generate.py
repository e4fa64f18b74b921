"""POST /generate: request parameters in, the scenario CSV streamed out row chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from api_token.guard import require_token
from csvgen.config import Settings
from csvgen.deps import MetricsDep, SettingsDep
from csvgen.errors import ScenarioTooLarge
from csvgen.metrics import CsvgenMetrics
from scenario_gen.scenario import Scenario
from scenario_gen.spec import GenerateRequest

# every route here is a POST: the API token (they write nothing, but cost CPU)
router = APIRouter(tags=["generate"], dependencies=[Depends(require_token)])


def _prepare(request: GenerateRequest, settings: Settings) -> Scenario:
    """Everything that can fail, before the first byte is sent (a streamed answer cannot turn
    into a 4xx any more)."""
    scenario = Scenario(request, resolve=settings.data_file)
    if scenario.expected_rows > settings.csvgen_max_rows:
        raise ScenarioTooLarge(
            f"the scenario has about {scenario.expected_rows:.0f} rows, more than "
            f"CSVGEN_MAX_ROWS={settings.csvgen_max_rows}; use the csvgen command for it"
        )
    scenario.check_capacity()
    return scenario


def _body(scenario: Scenario, metrics: CsvgenMetrics) -> Iterator[bytes]:
    for text in scenario.text():
        metrics.rows_generated.inc(text.count("\n"))
        yield text.encode("ascii")


@router.post(
    "/generate",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "the scenario CSV"},
        413: {"description": "more rows than CSVGEN_MAX_ROWS"},
        422: {"description": "bad parameters, unreadable Milano file, too few pods"},
    },
)
async def generate(
    request: GenerateRequest, settings: SettingsDep, metrics: MetricsDep
) -> StreamingResponse:
    scenario = await anyio.to_thread.run_sync(_prepare, request, settings)
    name = f"scenario-{request.shape.kind}-{request.arrivals}.csv"
    return StreamingResponse(
        _body(scenario, metrics),  # a sync iterator: Starlette runs it in a worker thread
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Expected-Rows": f"{scenario.expected_rows:.0f}",
        },
    )

"""POST /validate: upload a scenario file (either format), get the JSON report back."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, UploadFile

from api_token.guard import require_token
from csvgen.deps import MetricsDep, SettingsDep
from csvgen.report import ValidationReport, validation_report
from scenario_csv import RateCheck, text_lines

# every route here is a POST: the API token (they write nothing, but cost CPU)
router = APIRouter(tags=["validate"], dependencies=[Depends(require_token)])


@router.post("/validate", response_model=ValidationReport)
async def validate_upload(
    file: UploadFile,
    settings: SettingsDep,
    metrics: MetricsDep,
    pairing_convention: Annotated[
        bool, Query(description="check that even pods call the next odd pod")
    ] = True,
    rate_check: Annotated[
        RateCheck, Query(description="statistical (any arrivals), deterministic or off")
    ] = "statistical",
    max_defects: Annotated[
        int | None, Query(ge=0, le=100_000, description="defects to list (default setting)")
    ] = None,
) -> ValidationReport:
    """200 with `valid: false` and the defects when the file has any; 422 for bad parameters."""
    limit = settings.csvgen_max_defects if max_defects is None else max_defects

    def run() -> ValidationReport:
        return validation_report(
            text_lines(file.file),
            pairing_convention=pairing_convention,
            rate_check=rate_check,
            max_defects=limit,
        )

    report = await anyio.to_thread.run_sync(run)
    metrics.files_validated.labels(result="valid" if report.valid else "defects").inc()
    return report

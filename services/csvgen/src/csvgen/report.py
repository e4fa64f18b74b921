"""A validation run as a JSON-able report (the service's answer, `csvgen validate --json`)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from scenario_csv import Defect, RateCheck, ScenarioSummary, validate


class DefectView(BaseModel):
    line: int
    field: str
    message: str


class SummaryView(BaseModel):
    format: str | None
    rows: int
    duration_s: float
    peak_rate: float = Field(description="highest declared rate, invites/s")
    mean_rate: float = Field(description="rows / duration, invites/s")
    peak_second_invites: int = Field(description="most invites in one second")
    pods: list[int] = Field(description="pods that callers and callees use")
    pods_needed: int = Field(description="highest pod used + 1 (pods are numbered from 0)")
    phones_per_pod: int = Field(description="highest phone number used + 1")

    @classmethod
    def of(cls, summary: ScenarioSummary) -> SummaryView:
        return cls(
            format=summary.format.value if summary.format else None,
            rows=summary.rows,
            duration_s=round(summary.duration_s, 3),
            peak_rate=round(summary.peak_rate, 3),
            mean_rate=round(summary.mean_rate, 3),
            peak_second_invites=summary.peak_second_invites,
            pods=summary.pods,
            pods_needed=summary.pods_needed,
            phones_per_pod=summary.phones_per_pod,
        )


class ValidationReport(BaseModel):
    valid: bool
    defect_count: int
    defects: list[DefectView] = Field(description="the first max_defects defects")
    truncated: bool = Field(description="more defects were found than are listed")
    summary: SummaryView


def validation_report(
    lines: Iterable[str],
    *,
    pairing_convention: bool = True,
    rate_check: RateCheck = "statistical",
    max_defects: int = 1000,
) -> ValidationReport:
    run = validate(lines, pairing_convention=pairing_convention, rate_check=rate_check)
    listed: list[Defect] = []
    for defect in run:
        if len(listed) < max_defects:
            listed.append(defect)
    count = run.summary.defects
    return ValidationReport(
        valid=count == 0,
        defect_count=count,
        defects=[DefectView(line=d.line, field=d.field, message=d.message) for d in listed],
        truncated=count > len(listed),
        summary=SummaryView.of(run.summary),
    )

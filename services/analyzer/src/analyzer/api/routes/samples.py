"""Every recorded pair, paged, as JSON or CSV (the runner curls this after a run)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from analyzer.deps import SamplesDep, SettingsDep
from analyzer.pairing import PAIRS
from analyzer.samples import csv_rows

router = APIRouter(tags=["samples"])


@router.get("/samples", response_model=None)
async def samples(
    store: SamplesDep,
    settings: SettingsDep,
    since: Annotated[float | None, Query(description="epoch seconds, inclusive")] = None,
    until: Annotated[float | None, Query(description="epoch seconds, exclusive")] = None,
    pair: Annotated[str | None, Query(description="one of the pair names")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 10_000,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> dict[str, object] | StreamingResponse:
    """Samples in recording order; `total` counts those matching the filters."""
    if pair is not None and pair not in PAIRS:
        raise HTTPException(422, f"unknown pair {pair!r}; known: {', '.join(PAIRS)}")
    if since is not None and until is not None and until < since:
        raise HTTPException(422, f"until ({until}) is before since ({since})")
    total, page = store.select(since, until, pair, offset, limit)
    proxy = settings.proxy_label
    if format == "csv":
        return StreamingResponse(
            csv_rows(page, proxy),
            media_type="text/csv",
            headers={"X-Total-Count": str(total), "X-Dropped-Count": str(store.dropped)},
        )
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "dropped": store.dropped,
        "items": [s.as_dict(proxy) for s in page],
    }

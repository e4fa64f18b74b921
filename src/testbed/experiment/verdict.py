"""The comparison's answer in one paragraph: which entries met P0, and the cheapest of them.

"Met P0" is a service-level objective over the run: no failed call and at most
`allowed_share` of the windows with the percentile above P0 (0.05 by default: 95% of the
windows met the target). Cost is proxy-seconds, the CPU a pool held; a group's figures are
the means over its completed repetitions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

DEFAULT_ALLOWED_SHARE = 0.05


@dataclass(frozen=True)
class Judged:
    label: str
    share_over: float | None  # of the windows, percentile above P0
    calls_failed: float | None
    proxy_seconds: float | None
    met: bool


@dataclass(frozen=True)
class Verdict:
    judged: tuple[Judged, ...]
    allowed_share: float

    @property
    def cheapest_met(self) -> Judged | None:
        met = [j for j in self.judged if j.met and j.proxy_seconds is not None]
        return min(met, key=lambda j: j.proxy_seconds or 0.0) if met else None

    def lines(self) -> list[str]:
        out = [
            f"{j.label}: {'met P0' if j.met else 'missed P0'} "
            f"({_share(j.share_over)} of windows over P0, {_count(j.calls_failed)} failed calls, "
            f"{_count(j.proxy_seconds)} proxy-seconds)"
            for j in self.judged
        ]
        best = self.cheapest_met
        if best is None:
            out.append(
                f"answer: none met P0 (at most {self.allowed_share:.0%} of windows over, "
                "no failed call)"
            )
            return out
        answer = f"answer: {best.label} met P0 at the lowest cost, {_count(best.proxy_seconds)}"
        answer += " proxy-seconds"
        others = [j for j in self.judged if j.met and j is not best and j.proxy_seconds]
        if others and best.proxy_seconds:
            dearest = max(others, key=lambda j: j.proxy_seconds or 0.0)
            saved = 1 - best.proxy_seconds / (dearest.proxy_seconds or 1.0)
            answer += f" ({saved:.0%} less than {dearest.label})"
        out.append(answer)
        return out


def judge(
    entries: Iterable[tuple[str, Sequence[dict[str, Any]]]],
    allowed_share: float = DEFAULT_ALLOWED_SHARE,
) -> Verdict:
    """entries: (label, the completed runs' summaries) per compared folder."""
    judged = []
    for label, summaries in entries:
        share = _mean(summaries, "p99_violation_share")
        failed = _mean(summaries, "calls_failed")
        cost = _mean(summaries, "proxy_seconds")
        met = share is not None and share <= allowed_share and failed == 0
        judged.append(Judged(label, share, failed, cost, met))
    return Verdict(tuple(judged), allowed_share)


def _mean(summaries: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(s[key]) for s in summaries if isinstance(s.get(key), int | float)]
    return fmean(values) if values else None


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"

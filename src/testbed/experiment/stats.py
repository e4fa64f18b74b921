"""Statistics over repetitions, sans I/O: mean, standard deviation, the Student-t 95%
confidence interval of the mean, and Welch's t-test for a difference between two groups.

Repetitions of a run are few (2-10), so the interval uses Student's t with n-1 degrees of
freedom, not the normal 1.96; Welch's test does not assume the two groups share a variance
(an autoscaled run and a fixed pool seldom do)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CONFIDENCE = 0.95
ALPHA = 0.05  # a difference is marked significant when Welch's p < ALPHA


@dataclass(frozen=True)
class Estimate:
    """A figure over n repetitions. `ci_low`/`ci_high` are None when n < 2 (no interval
    from one value); with zero variance the interval is the mean itself."""

    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    minimum: float | None
    maximum: float | None
    note: str = ""

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "sd": self.sd,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
            "ci95_half_width": self.half_width,
            "min": self.minimum,
            "max": self.maximum,
            **({"note": self.note} if self.note else {}),
        }


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value: 12.706 for df=1, 2.262 for df=9 at 95%."""
    return float(_student_t().ppf(1 - (1 - confidence) / 2, df))


def numbers(values: Sequence[object]) -> list[float]:
    """The usable values: numbers, not None, not NaN, not booleans."""
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
    ]


def _mean_variance(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n-1 denominator) of at least two values."""
    mean = math.fsum(xs) / len(xs)
    return mean, math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def estimate(values: Sequence[object], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample standard deviation (n-1) and the t interval of the mean; values that
    are not numbers (None: a figure a run did not have) are left out."""
    xs = numbers(values)
    n = len(xs)
    if n == 0:
        return Estimate(0, None, None, None, None, None, None, "no values")
    if n == 1:
        return Estimate(1, xs[0], None, None, None, xs[0], xs[0], "n=1: no confidence interval")
    mean, variance = _mean_variance(xs)
    sd = math.sqrt(variance)
    half = t_quantile(n - 1, confidence) * sd / math.sqrt(n)
    note = "zero variance: every repetition gave the same value" if sd == 0 else ""
    return Estimate(n, mean, sd, mean - half, mean + half, min(xs), max(xs), note)


@dataclass(frozen=True)
class Welch:
    """Welch's two-sample t-test of mean(a) - mean(b). `p` is None when it cannot be computed
    (a group with fewer than 2 values); `note` says why, or what was special."""

    difference: float | None
    t: float | None
    df: float | None
    p: float | None
    note: str = ""

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    def as_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "t": self.t,
            "df": self.df,
            "p": self.p,
            "significant": self.significant,
            **({"note": self.note} if self.note else {}),
        }


def welch(a: Sequence[object], b: Sequence[object]) -> Welch:
    """t = (ma - mb) / sqrt(va/na + vb/nb), Welch-Satterthwaite degrees of freedom, two-sided
    p from Student's t."""
    xa, xb = numbers(a), numbers(b)
    if len(xa) < 2 or len(xb) < 2:
        diff = math.fsum(xa) / len(xa) - math.fsum(xb) / len(xb) if xa and xb else None
        return Welch(diff, None, None, None, "not tested: each side needs n >= 2")
    (ma, va), (mb, vb) = _mean_variance(xa), _mean_variance(xb)
    na, nb = len(xa), len(xb)
    diff = ma - mb
    sa, sb = va / na, vb / nb  # squared standard errors of the two means
    if sa + sb == 0:
        # both sides constant: the difference is exact (or there is none)
        if diff == 0:
            return Welch(0.0, None, None, 1.0, "zero variance on both sides, equal means")
        return Welch(diff, None, None, 0.0, "zero variance on both sides, different means")
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / ((sa**2 / (na - 1) if sa else 0.0) + (sb**2 / (nb - 1) if sb else 0.0))
    t = diff / se
    p = float(2 * _student_t().sf(abs(t), df))
    return Welch(diff, t, df, p)


def _student_t() -> Any:
    """scipy's t distribution, imported when first needed: scipy.stats takes seconds to import
    and every `testbed` command would pay for it."""
    from scipy import stats

    return stats.t

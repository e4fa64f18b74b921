"""Percentiles from Prometheus histogram buckets, as histogram_quantile() computes them."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[float, float]  # upper bound (le) -> cumulative count


def parse_histogram(text: str, name: str) -> Buckets:
    """Cumulative buckets of histogram `name` summed over all its label sets."""
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return buckets


def parse_counter(text: str, name: str, labels: Mapping[str, str]) -> float:
    """Sum of counter `name` over the samples whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        # exporters differ in whether the TYPE line carries the _total suffix
        if family.name not in (name, f"{name}_total"):
            continue
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


def difference(new: Buckets, old: Buckets) -> Buckets:
    return {le: new[le] - old.get(le, 0.0) for le in new}


def add(a: Buckets, b: Buckets) -> Buckets:
    return {le: a.get(le, 0.0) + b.get(le, 0.0) for le in set(a) | set(b)}


def quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile (0..1) by linear interpolation inside the bucket holding it; None with
    no observations. Past the last finite bound it answers that bound, as Prometheus does."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if math.isinf(bounds[-1]) else max(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound

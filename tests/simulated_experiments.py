"""Small experiments for the simulator's tests: a step load (4 calls/s for 60 s, then 12) on
10m proxies under the capacity policy, fast enough to simulate in a fraction of a second."""

from __future__ import annotations

import copy
from typing import Any

_STEP: dict[str, Any] = {
    "name": "sim-step",
    "scenario": {
        "generate": {
            "shape": {
                "kind": "step",
                "start_rate": 4,
                "step_rate": 8,
                "step_every_s": 60,
                "steps": 2,
            },
            "pods": 2,
            "phones_per_pod": 50,
        },
    },
    "proxies": {"count": 1, "cpu": "10m"},
    "autoscale": {
        "policy": "capacity",
        "capacity": {"capacity_per_proxy": 6, "headroom": 1.0},
        "min_replicas": 1,
        "max_replicas": 6,
        "sync_period_s": 5,
        "scrape_interval_s": 5,
        "metric_window_s": 10,
        "startup_delay_s": 5,
    },
    "qos": {"p0_ms": 1000, "window_s": 10},
    "metrics": {"scrape_interval_s": 5},
}


def step_experiment(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the step experiment with top-level fields replaced."""
    data = copy.deepcopy(_STEP)
    data.update(changes)
    return data

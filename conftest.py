"""The fuzz targets' hypothesis profile, for every member's tests/test_fuzz_*.py (docs/fuzzing.md).

Each fuzz test is decorated with `FUZZ = settings.get_profile("fuzz")`, so the profile other
conftests load for their own property tests does not change it. `FUZZ_PROFILE=long` turns the
bounded, reproducible CI run into a long random one; `FUZZ_EXAMPLES=N` sets the count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_PROFILES = {
    # CI: the same examples on every run (derandomize), a few hundred per target
    "ci": {"max_examples": 300, "derandomize": True},
    # by hand or nightly: new random examples each time; a failure prints its reproduce blob
    "long": {"max_examples": 20_000, "derandomize": False, "print_blob": True},
}


def _fuzz_profile() -> settings:
    name = os.environ.get("FUZZ_PROFILE", "ci")
    if name not in _PROFILES:
        raise pytest.UsageError(f"FUZZ_PROFILE={name!r}: expected one of {', '.join(_PROFILES)}")
    options: dict[str, object] = dict(_PROFILES[name])
    if examples := os.environ.get("FUZZ_EXAMPLES"):
        if not examples.isascii() or not examples.isdigit() or int(examples) < 1:
            raise pytest.UsageError(f"FUZZ_EXAMPLES={examples!r}: expected a whole number >= 1")
        options["max_examples"] = int(examples)
    return settings(
        deadline=None,
        database=None,  # no .hypothesis/ example database in the shared checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **options,  # type: ignore[arg-type]
    )


settings.register_profile("fuzz", _fuzz_profile())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: a property-based fuzz target (test_fuzz_*.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).name.startswith("test_fuzz_"):
            item.add_marker(pytest.mark.fuzz)

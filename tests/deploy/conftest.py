"""Everything under tests/deploy/ builds or runs the shipped artefacts: images with podman,
docker-compose.yml, the Helm chart on a real single-node cluster (`-m "not deploy"`)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.deploy)

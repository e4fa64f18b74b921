"""`testbed compose` against a project that does not exist: status says every service is
missing (and fails), down has nothing to remove (and succeeds). The running stack's status is
checked in test_compose.py."""

from __future__ import annotations

import os
import re
import uuid

from typer.testing import CliRunner

from testbed.containers.compose import active_services, load
from testbed.containers.compose_cli import compose_app
from testbed.containers.engine import ROOT


def test_status_of_a_project_that_is_not_there_lists_every_service_missing() -> None:
    project = f"tbabsent{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(compose_app, ["status", "-p", project])
    assert result.exit_code == 1, result.output
    services = active_services(load(ROOT / "docker-compose.yml"))
    assert "grafana" not in services  # its profile is off
    for service in services:
        assert re.search(rf"{re.escape(service)}\s.*missing", result.output), result.output
    with_profile = CliRunner().invoke(
        compose_app, ["status", "-p", project, "--profile", "grafana"]
    )
    assert re.search(r"grafana\s.*missing", with_profile.output), with_profile.output


def test_down_of_a_project_that_is_not_there_leaves_nothing() -> None:

    project = f"tbabsent{uuid.uuid4().hex[:8]}"
    before = dict(os.environ)
    result = CliRunner().invoke(compose_app, ["down", "-p", project])
    assert result.exit_code == 0, result.output
    # the placeholders for compose's required secrets go to the compose tool only
    assert dict(os.environ) == before
    assert f"{project}: down in" in result.output
    assert "nothing left" in result.output

"""`testbed run --kubeconfig` reads the release's API token from the Secret the chart made."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import api_token
from testbed.experiment.cluster_runner import ClusterTools, _api_token
from testbed.experiment.runner import ExperimentFailed


class FakeTools(ClusterTools):
    def __init__(self, data: dict[str, str]) -> None:
        super().__init__(Path("kubeconfig"), Path("kubectl"), Path("helm"))
        self.data = data
        self.calls: list[tuple[str, ...]] = []

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        self.calls.append(args)
        return json.dumps({"kind": "Secret", "data": self.data})


def test_the_token_comes_from_the_releases_secret() -> None:
    token = api_token.generate()
    tools = FakeTools({"api-token": base64.b64encode(token.encode()).decode()})
    assert _api_token(tools, "tb-demo-123456") == token
    assert tools.calls == [("-n", "tb-demo-123456", "get", "secret", "tb-api-token", "-o", "json")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "no base64 UTF-8 value under key api-token"),
        ({"api-token": "%%%not-base64"}, "no base64 UTF-8 value under key api-token"),
        ({"api-token": base64.b64encode(b"tiny-val").decode()}, "key api-token:"),
    ],
)
def test_an_unusable_secret_names_the_problem_not_the_value(
    data: dict[str, str], problem: str
) -> None:
    with pytest.raises(ExperimentFailed, match=problem) as raised:
        _api_token(FakeTools(data), "ns")
    assert "tiny-val" not in str(raised.value)
    assert "tb-api-token" in str(raised.value)

"""services/<name>/openapi.json: generated, stable, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service_kit import openapi
from service_kit.services import discover


def test_the_document_is_the_apps_with_sorted_keys(toy_repo: Path) -> None:
    (service,) = discover(toy_repo)
    text = openapi.document(service)
    spec = json.loads(text)
    assert spec["info"] == {"title": "toy", "version": "1.0"}
    assert list(spec["paths"]) == ["/alpha", "/zeta"]  # sorted, not in route order
    assert text == json.dumps(spec, indent=2, sort_keys=True) + "\n"


def test_the_environment_does_not_change_the_document(
    toy_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (service,) = discover(toy_repo)
    before = openapi.document(service)
    monkeypatch.setenv("TOY_TITLE", "machine-specific")
    monkeypatch.setenv("TOY_PORT", "not-a-port")  # would not even validate
    assert openapi.document(service) == before


def test_write_then_check(toy_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = toy_repo / "services" / "toy-svc" / "openapi.json"
    assert openapi.stale(toy_repo) == [target]  # missing counts as stale
    with pytest.raises(SystemExit) as exited:
        openapi.main(["--check", "--root", str(toy_repo)])
    assert exited.value.code == 1
    assert f"stale: {target} (run scripts/openapi.sh)" in capsys.readouterr().err

    openapi.main(["--root", str(toy_repo)])
    assert target.is_file()
    assert openapi.stale(toy_repo) == []
    with pytest.raises(SystemExit) as exited:
        openapi.main(["--check", "--root", str(toy_repo)])
    assert exited.value.code == 0

    target.write_text(target.read_text().replace("/zeta", "/eta"))
    assert openapi.stale(toy_repo) == [target]
    assert openapi.write(toy_repo) == [target]
    assert openapi.write(toy_repo) == []  # nothing changed: nothing written

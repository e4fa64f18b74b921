from typing import Any

import pytest

from policy_controller import cli, config


def test_help_names_the_command(capsys):
    cli.main(["--help"])
    assert "policy-controller serve" in capsys.readouterr().out


def test_serve_help_lists_host_port_and_the_variables(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["serve", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for text in ("--host", "--port", "POLICY_CONTROLLER_PORT", "POLICY_CONTROLLER_KNEE_PER_PROXY"):
        assert text in out


@pytest.mark.parametrize("argv", [[], ["run"]])
def test_another_command_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert "the command is serve" in capsys.readouterr().err


def test_bad_settings_are_one_line_each_and_exit_2(env, monkeypatch, capsys):
    monkeypatch.setenv("POLICY_CONTROLLER_PORT", "not-a-port")
    monkeypatch.delenv("POLICY_CONTROLLER_TARGET_NAME")
    with pytest.raises(SystemExit) as caught:
        cli.main(["serve"])
    assert caught.value.code == 2
    assert sorted(capsys.readouterr().err.splitlines()) == [
        "policy-controller: POLICY_CONTROLLER_PORT: Input should be a valid integer, unable to "
        "parse string as an integer",
        "policy-controller: POLICY_CONTROLLER_TARGET_NAME: required, not set",
    ]


def test_a_namespace_it_cannot_find_stops_it_before_serving(env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("POLICY_CONTROLLER_NAMESPACE", "")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setattr(cli, "serve", lambda *a, **k: pytest.fail("served"))
    with pytest.raises(SystemExit) as caught:
        cli.main(["serve"])
    assert caught.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("policy-controller: POLICY_CONTROLLER_NAMESPACE: not set")


def test_serve_uses_the_command_lines_host_and_port(env, monkeypatch):
    served: dict[str, Any] = {}

    def serve(app, settings, *, log_level):
        served.update(settings=settings, log_level=log_level, title=app.title)

    monkeypatch.setattr(cli, "serve", serve)
    cli.main(["serve", "--host", "0.0.0.0", "--port", "8096"])
    settings = served["settings"]
    assert (settings.policy_controller_host, settings.policy_controller_port) == ("0.0.0.0", 8096)
    assert (served["log_level"], served["title"]) == ("info", "policy-controller")

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from csvgen.cli import app
from csvgen.config import PACKAGED_DATA

runner = CliRunner()
MILANO = str(PACKAGED_DATA / "milano-synthetic-day.tsv")
DEFECTS = Path(__file__).parents[3] / "libs" / "scenario-csv" / "tests" / "fixtures"


def run(*args: str):
    return runner.invoke(app, list(args))


def test_generate_the_papers_step_scenario_and_validate_it(tmp_path):
    out = tmp_path / "step.csv"
    result = run("generate", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "48600 invites" in result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
    assert lines[1] == "0000;0100;83;0;12"
    assert lines[-1].endswith(";1799;42")
    result = run("validate", str(out), "--rate-check", "deterministic")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "valid main file: 48600 invites in 1800 s" in result.stderr


def test_validate_prints_one_line_per_defect_and_fails():
    result = run("validate", str(DEFECTS / "padding-700.csv"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    assert all(
        line.startswith(f"line {n}: callee: ") for n, line in zip(range(2, 14), lines, strict=True)
    )
    assert "12 defects in 12 rows" in result.stderr


def test_validate_switches_and_json(tmp_path):
    wrong = str(DEFECTS / "wrong-callee.csv")
    assert run("validate", wrong).exit_code == 1
    assert run("validate", wrong, "--no-pairing").exit_code == 0
    result = run("validate", wrong, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["defects"] == [
        {"line": 8, "field": "callee", "message": report["defects"][0]["message"]}
    ]
    assert report["summary"]["pods"] == [0, 1, 2, 3]


def test_stdin_and_stdout(tmp_path):
    generated = run("generate", "--shape", "constant", "--rate", "5", "--duration", "4")
    assert generated.exit_code == 0
    assert len(generated.stdout.splitlines()) == 21
    checked = runner.invoke(app, ["validate", "-"], input=generated.stdout)
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "--shape", "constant", "--rate", "10"],
            "--duration: required for --shape constant",
        ),
        (
            ["generate", "--shape", "constant", "--rate", "-1", "--duration", "5"],
            "--rate: Input should be greater than 0",
        ),
        (
            ["generate", "--shape", "constant", "--rate", "1", "--duration", "5", "--steps", "3"],
            "--steps does not apply to --shape constant",
        ),
        (["generate", "--pods", "4", "--hold-time", "60"], "too few pods"),
        (["generate", "--first-pod", "3"], "first_pod 3 is odd"),
        (["generate", "--shape", "table", "--table", "missing.txt"], "missing.txt: cannot read"),
        (
            ["generate", "--shape", "milano", "--milano", MILANO, "--days", "2013-11-05"],
            "day 2013-11-05 is not in the Milano files",
        ),
        (
            ["generate", "--shape", "milano", "--milano", MILANO, "--days", "monday"],
            "--days: 'monday'",
        ),
        (["validate", "missing.csv"], "missing.csv: No such file or directory"),
        (["plot", "missing.csv"], "missing.csv: No such file or directory"),
        (["plot", str(DEFECTS / "padding-700.csv")], "line 2: callee: '700' is not zero-padded"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("csvgen: error: ")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_failed_generation_leaves_no_file(tmp_path):
    out = tmp_path / "burst.csv"
    result = run(
        "generate",
        "--shape",
        "constant",
        "--rate",
        "10",
        "--duration",
        "600",
        "--arrivals",
        "poisson",
        "--pods",
        "2",
        "--hold-time",
        "9.5",
        "-o",
        str(out),
    )
    assert result.exit_code == 2
    assert "too few pods" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_milano_generation_and_the_ten_minute_format(tmp_path):
    out = tmp_path / "milano.csv"
    result = run(
        "generate",
        "--shape",
        "milano",
        "--milano",
        MILANO,
        "--squares",
        "4259,5060",
        "--compress",
        "8",
        "--peak-rate",
        "30",
        "--format",
        "ten_minute",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(
        "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee\n0;0;"
    )
    assert run("validate", str(out)).exit_code == 0
    main = tmp_path / "main.csv"
    assert run("convert", str(out), "--to", "main", "-o", str(main)).exit_code == 0
    back = tmp_path / "back.csv"
    assert run("convert", str(main), "--to", "ten_minute", "-o", str(back)).exit_code == 0
    assert back.read_text() == out.read_text()


def test_spec_file_is_the_service_body(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"shape": {"kind": "ramp", "from_rate": 1, "to_rate": 3, "duration_s": 10}})
    )
    result = run("generate", "--spec", str(spec))
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1 + 20
    spec.write_text(json.dumps({"shape": {"kind": "ramp"}}))
    result = run("generate", "--spec", str(spec))
    assert result.exit_code == 2
    assert "shape.ramp.from_rate: Field required" in result.stderr
    assert run("generate", "--spec", str(spec), "--pods", "4").exit_code == 2


def test_plots_are_pngs(tmp_path):
    shape_png = tmp_path / "shape.png"
    assert run("plot", "--shape", "step", "-o", str(shape_png)).exit_code == 0
    assert shape_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = tmp_path / "s.csv"
    run("generate", "--arrivals", "poisson", "-o", str(csv))
    csv_png = tmp_path / "s.png"
    result = run("plot", str(csv), "-o", str(csv_png), "--title", "Poisson step")
    assert result.exit_code == 0, result.output
    assert csv_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("plot", str(csv), "--rate", "3").exit_code == 2


@pytest.mark.slow
def test_the_console_script_is_installed(tmp_path):
    out = tmp_path / "c.csv"
    generate = subprocess.run(
        [
            "csvgen",
            "generate",
            "--shape",
            "constant",
            "--rate",
            "2",
            "--duration",
            "3",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert generate.returncode == 0, generate.stderr
    (tmp_path / "bad.csv").write_text(out.read_text().replace("0000;0100", "0000;700"))
    validate = subprocess.run(
        ["csvgen", "validate", str(tmp_path / "bad.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 1
    assert validate.stdout.splitlines()[0].startswith("line 2: callee: '700'")
    assert "Traceback" not in validate.stderr

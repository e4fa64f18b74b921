"""`csvgen generate | validate | plot | convert | serve`.

Exit codes: 0 fine, 1 the validated file has defects, 2 bad options or input (the message
names the option, file, line or field; no traceback).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

import service_kit
from csvgen.errors import CsvgenError
from csvgen.report import validation_report
from csvgen.table import read_table
from scenario_csv import (
    ScenarioError,
    ScenarioFormat,
    detect_format,
    read_main,
    text_lines,
    validate,
    write_main,
    write_ten_minute,
)
from scenario_csv import read_ten_minute as read_as_ten_minute
from scenario_gen.errors import GenerationError
from scenario_gen.output import write_file, write_stream
from scenario_gen.scenario import Scenario, build_shape
from scenario_gen.spec import GenerateRequest
from service_kit import describe, problem

app = typer.Typer(
    help="Generate, validate and plot scenario CSVs for the IMS testbed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ShapeKind(StrEnum):
    constant = "constant"
    step = "step"
    ramp = "ramp"
    table = "table"
    milano = "milano"


class ArrivalsKind(StrEnum):
    deterministic = "deterministic"
    poisson = "poisson"


class Interpolate(StrEnum):
    hold = "hold"
    linear = "linear"


class RateCheckKind(StrEnum):
    statistical = "statistical"
    deterministic = "deterministic"
    off = "off"


# option -> field of each shape it sets; anything else does not apply to that shape
SHAPE_FIELDS: dict[ShapeKind, dict[str, str]] = {
    ShapeKind.constant: {"rate": "rate", "duration": "duration_s"},
    ShapeKind.step: {
        "rate": "start_rate",
        "step_rate": "step_rate",
        "step_every": "step_every_s",
        "steps": "steps",
    },
    ShapeKind.ramp: {"rate": "from_rate", "to_rate": "to_rate", "duration": "duration_s"},
    ShapeKind.table: {"table": "points", "interpolate": "interpolate", "duration": "duration_s"},
    ShapeKind.milano: {
        "milano": "files",
        "squares": "squares",
        "days": "days",
        "peak_rate": "peak_rate",
        "compress": "compress",
        "interpolate": "interpolate",
        "utc_offset": "utc_offset_hours",
    },
}
PLAN_FIELDS = {
    "arrivals": "arrivals",
    "seed": "seed",
    "pods": "pods",
    "phones_per_pod": "phones_per_pod",
    "first_pod": "first_pod",
    "hold_time": "hold_time_s",
    "output_format": "format",
}


def _option(name: str) -> str:
    return "--" + {"output_format": "format"}.get(name, name).replace("_", "-")


def _fail(message: str) -> NoReturn:
    typer.echo(f"csvgen: error: {message}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Errors in what the user gave become one line on stderr and exit code 2."""
    try:
        yield
    except (CsvgenError, GenerationError, ScenarioError) as exc:
        _fail(str(exc))
    except BrokenPipeError:
        raise  # `csvgen generate | head`: click ends quietly
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _pydantic_message(error: ValidationError, names: dict[str, str]) -> str:
    """Pydantic's errors with the CLI's option names instead of field names."""
    fields_to_options = {field: _option(option) for option, field in names.items()}
    messages = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"] if not str(part).isdigit()]
        field = next((p for p in reversed(loc) if p in fields_to_options), None)
        where = fields_to_options[field] if field else "options"
        message = problem(item)
        if item["type"] == "missing" and len(loc) > 1 and loc[0] == "shape":
            message = f"required for --shape {loc[1]}"
        messages.append(f"{where}: {message}")
    return "; ".join(messages)


def _parse_squares(text: str) -> list[int] | None:
    if text.strip().lower() == "all":
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail(f"--squares: {text!r}: give 'all' or square ids like 4259,4456")


def _parse_days(text: str) -> list[dt.date]:
    try:
        return [dt.date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail(f"--days: {text!r}: give dates like 2013-11-04,2013-11-05")


def _shape_dict(kind: ShapeKind, given: dict[str, Any]) -> dict[str, Any]:
    fields = SHAPE_FIELDS[kind]
    for option in given:
        if option not in fields:
            _fail(f"{_option(option)} does not apply to --shape {kind.value}")
    shape: dict[str, Any] = {"kind": kind.value}
    for option, value in given.items():
        if option == "table":
            value = read_table(Path(value))
        elif option == "squares":
            value = _parse_squares(value)
        elif option == "days":
            value = _parse_days(value)
        elif option == "milano":
            value = [str(p) for p in value]
        elif isinstance(value, StrEnum):
            value = value.value
        shape[fields[option]] = value
    return shape


def _build(
    kind: ShapeKind, shape_given: dict[str, Any], plan_given: dict[str, Any]
) -> GenerateRequest:
    body: dict[str, Any] = {"shape": _shape_dict(kind, shape_given)}
    for option, value in plan_given.items():
        body[PLAN_FIELDS[option]] = value.value if isinstance(value, StrEnum) else value
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        _fail(_pydantic_message(exc, SHAPE_FIELDS[kind] | PLAN_FIELDS))


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != []}


# the shape options, shared by generate and plot
ShapeOpt = Annotated[ShapeKind, typer.Option("--shape", help="lambda(t) shape")]
RateOpt = Annotated[
    float | None,
    typer.Option(help="constant: the rate; step: first rate (12); ramp: start rate"),
]
ToRateOpt = Annotated[float | None, typer.Option(help="ramp: end rate")]
StepRateOpt = Annotated[float | None, typer.Option(help="step: added per step (6)")]
StepEveryOpt = Annotated[float | None, typer.Option(help="step: seconds per step (300)")]
StepsOpt = Annotated[int | None, typer.Option(help="step: number of steps (6)")]
DurationOpt = Annotated[
    float | None, typer.Option(help="seconds (constant, ramp; table: default last point)")
]
TableOpt = Annotated[
    Path | None, typer.Option(help="table: file of 'seconds;rate' lines", dir_okay=False)
]
InterpolateOpt = Annotated[
    Interpolate | None, typer.Option(help="table (hold) / milano (linear): between points")
]
MilanoOpt = Annotated[
    list[Path] | None,
    typer.Option(help="milano: a CDR file (repeat for several days)", dir_okay=False),
]
SquaresOpt = Annotated[str | None, typer.Option(help="milano: 'all' or ids, e.g. 4259,4456")]
DaysOpt = Annotated[str | None, typer.Option(help="milano: local dates, default all")]
PeakRateOpt = Annotated[float | None, typer.Option(help="milano: invites/s at the peak (42)")]
CompressOpt = Annotated[
    float | None, typer.Option(help="milano: time compression (8: a day in 3 h)")
]
UtcOffsetOpt = Annotated[float | None, typer.Option(help="milano: hours east of UTC (1)")]


@app.command()
def generate(
    shape: ShapeOpt = ShapeKind.step,
    rate: RateOpt = None,
    to_rate: ToRateOpt = None,
    step_rate: StepRateOpt = None,
    step_every: StepEveryOpt = None,
    steps: StepsOpt = None,
    duration: DurationOpt = None,
    table: TableOpt = None,
    interpolate: InterpolateOpt = None,
    milano: MilanoOpt = None,
    squares: SquaresOpt = None,
    days: DaysOpt = None,
    peak_rate: PeakRateOpt = None,
    compress: CompressOpt = None,
    utc_offset: UtcOffsetOpt = None,
    arrivals: Annotated[
        ArrivalsKind | None, typer.Option(help="deterministic (1000/lambda ms) or poisson")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="poisson: random seed (0)")] = None,
    pods: Annotated[int | None, typer.Option(help="client pods (2)")] = None,
    phones_per_pod: Annotated[int | None, typer.Option(help="phones per pod (100)")] = None,
    first_pod: Annotated[int | None, typer.Option(help="first (even) pod (0)")] = None,
    hold_time: Annotated[
        float | None, typer.Option(help="seconds a call lasts; no phone is called again sooner")
    ] = None,
    output_format: Annotated[
        ScenarioFormat | None, typer.Option("--format", help="main or ten_minute")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="a JSON request (the service's body) instead of options")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default stdout)")
    ] = None,
) -> None:
    """Generate a scenario CSV (default: the paper's step scenario, 12..42 invites/s)."""
    with _user_errors():
        shape_given = _given(
            {
                "rate": rate,
                "to_rate": to_rate,
                "step_rate": step_rate,
                "step_every": step_every,
                "steps": steps,
                "duration": duration,
                "table": table,
                "interpolate": interpolate,
                "milano": milano,
                "squares": squares,
                "days": days,
                "peak_rate": peak_rate,
                "compress": compress,
                "utc_offset": utc_offset,
            }
        )
        plan_given = _given(
            {
                "arrivals": arrivals,
                "seed": seed,
                "pods": pods,
                "phones_per_pod": phones_per_pod,
                "first_pod": first_pod,
                "hold_time": hold_time,
                "output_format": output_format,
            }
        )
        if spec is not None:
            if shape_given or plan_given:
                _fail("--spec takes the whole request; give no other generation options")
            try:
                request = GenerateRequest.model_validate_json(spec.read_text(encoding="utf-8"))
            except ValidationError as exc:
                _fail(f"{spec}: {describe(exc, whole='body')}")  # JSON paths, as the service
        else:
            request = _build(shape, shape_given, plan_given)
        scenario = Scenario(request)
        scenario.check_capacity()  # a Poisson burst is refused before anything is written
        if output is None:
            rows = write_stream(scenario, sys.stdout)
        else:
            rows = write_file(scenario, output)
        where = output or "stdout"
        typer.echo(
            f"csvgen: {rows} invites, {scenario.shape.duration_s:g} s, peak "
            f"{scenario.shape.peak:g}/s, {request.format.value} format -> {where}",
            err=True,
        )


@contextlib.contextmanager
def _binary_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        _fail(f"{path}: {exc.strerror or exc}")
    with stream:
        yield stream


@app.command(name="validate")
def validate_command(
    file: Annotated[str, typer.Argument(help="scenario CSV (either format); - for stdin")],
    pairing: Annotated[
        bool, typer.Option(help="check the even-pod-calls-next-odd-pod convention")
    ] = True,
    rate_check: Annotated[
        RateCheckKind,
        typer.Option(help="statistical (any arrivals), deterministic (strict) or off"),
    ] = RateCheckKind.statistical,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report")] = False,
    max_defects: Annotated[
        int, typer.Option(help="--json: defects to list (all are counted)", min=0)
    ] = 1000,
) -> None:
    """Check a scenario file; one line per defect (`line N: field: message`), exit 1 if any."""
    with _binary_input(file) as stream:
        lines = text_lines(stream)
        if as_json:
            report = validation_report(
                lines,
                pairing_convention=pairing,
                rate_check=rate_check.value,
                max_defects=max_defects,
            )
            typer.echo(json.dumps(report.model_dump(), indent=2))
            raise typer.Exit(0 if report.valid else 1)
        run = validate(lines, pairing_convention=pairing, rate_check=rate_check.value)
        write = sys.stdout.write
        for defect in run:
            write(f"{defect}\n")
    summary = run.summary
    if summary.defects:
        typer.echo(f"{file}: {summary.defects} defects in {summary.rows} rows", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{file}: valid {summary.format} file: {summary.rows} invites in "
        f"{summary.duration_s:g} s, peak {summary.peak_rate:g}/s declared and "
        f"{summary.peak_second_invites} in one second, mean {summary.mean_rate:.3g}/s, "
        f"pods {summary.pods} ({summary.pods_needed} needed)",
        err=True,
    )


@app.command()
def plot(
    file: Annotated[
        Path | None,
        typer.Argument(help="a scenario CSV: realized and declared rate; without: lambda(t)"),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write")] = Path(
        "scenario.png"
    ),
    title: Annotated[str | None, typer.Option(help="plot title")] = None,
    shape: ShapeOpt = ShapeKind.step,
    rate: RateOpt = None,
    to_rate: ToRateOpt = None,
    step_rate: StepRateOpt = None,
    step_every: StepEveryOpt = None,
    steps: StepsOpt = None,
    duration: DurationOpt = None,
    table: TableOpt = None,
    interpolate: InterpolateOpt = None,
    milano: MilanoOpt = None,
    squares: SquaresOpt = None,
    days: DaysOpt = None,
    peak_rate: PeakRateOpt = None,
    compress: CompressOpt = None,
    utc_offset: UtcOffsetOpt = None,
) -> None:
    """Plot a scenario file's per-second rate, or lambda(t) of the shape options, as PNG."""
    from csvgen.plot import scenario_png, shape_png  # matplotlib loads slowly

    with _user_errors():
        shape_given = _given(
            {
                "rate": rate,
                "to_rate": to_rate,
                "step_rate": step_rate,
                "step_every": step_every,
                "steps": steps,
                "duration": duration,
                "table": table,
                "interpolate": interpolate,
                "milano": milano,
                "squares": squares,
                "days": days,
                "peak_rate": peak_rate,
                "compress": compress,
                "utc_offset": utc_offset,
            }
        )
        if file is not None:
            if shape_given:
                _fail("give either a scenario FILE or shape options, not both")
            with file.open(encoding="utf-8", errors="replace") as lines:
                png = scenario_png(lines, title, str(file))
        else:
            png = shape_png(build_shape(_build(shape, shape_given, {}).shape), title)
        output.write_bytes(png)
    typer.echo(f"csvgen: plot -> {output}", err=True)


@app.command()
def convert(
    file: Annotated[Path, typer.Argument(help="scenario CSV (either format)", dir_okay=False)],
    to: Annotated[ScenarioFormat, typer.Option(help="format to write")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default stdout)")
    ] = None,
) -> None:
    """Convert between the main format and the paper's ten_minute variant."""
    with _user_errors(), file.open(encoding="utf-8") as lines:
        out = output.open("w", encoding="ascii", newline="\n") if output else sys.stdout
        try:
            if to is ScenarioFormat.MAIN:
                rows = write_main(read_main(lines, str(file)), out)
            else:
                rows = write_ten_minute(read_as_ten_minute(lines, str(file)), out)
        finally:
            if output:
                out.close()
    typer.echo(f"csvgen: {rows} rows -> {output or 'stdout'}", err=True)
    if to is ScenarioFormat.MAIN and detect_format(_first_line(file)) is ScenarioFormat.TEN_MINUTE:
        typer.echo(
            "csvgen: note: arrival_rate_in_s holds each ten-minute slot's mean rate; where the "
            "rate varies within slots, validate it with --rate-check off",
            err=True,
        )


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return next(lines, "")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: $CSVGEN_HOST")] = None,
    port: Annotated[
        int | None, typer.Option(help="default: $CSVGEN_PORT", min=1, max=65535)
    ] = None,
) -> None:
    """Run the HTTP service (settings from CSVGEN_* variables and API_TOKEN;
    docs/configuration.md). Bad settings: one line each, exit code 2."""
    from csvgen.config import Settings
    from csvgen.main import create_app

    settings = service_kit.load_settings(Settings, "csvgen", host, port)
    service_kit.serve(create_app(settings), settings, log_level=settings.csvgen_log_level)


def main() -> None:
    app()

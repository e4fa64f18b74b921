"""`analyzer offline FILE --proxy HOST:PORT` prints every pair as CSV; `analyzer serve` runs
the service with its settings from the environment."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

import service_kit
from analyzer.analysis import Analyzer, pair_log
from analyzer.capture import DEFAULT_BACKEND, Backend, CaptureError, open_file, require_backend
from analyzer.config import Settings
from analyzer.endpoints import parse_endpoint
from analyzer.samples import OFFLINE_CSV_FIELDS, offline_csv_line
from service_kit import load_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="SIP response times at a proxy, from its captured traffic.",
)


def _proxy(value: str) -> str:
    try:
        parse_endpoint(value, "--proxy")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command()
def offline(
    file: Annotated[Path, typer.Argument(help="pcap or pcapng file")],
    proxy: Annotated[str, typer.Option(help="the proxy's SIP address, IPv4:port", callback=_proxy)],
    backend: Annotated[Backend, typer.Option(help="capture backend")] = DEFAULT_BACKEND,
    timeout: Annotated[
        float, typer.Option(help="seconds an unanswered message waits for its pair", min=0.001)
    ] = 32.0,
    debug: Annotated[
        bool, typer.Option(help="log each pair with both packets' times and addresses")
    ] = False,
) -> None:
    """Print every pair as CSV (time, pair, Call-ID, response time in ms); a summary of the
    counters goes to stderr."""
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {file}", param_hint="FILE")
    analyzer = Analyzer(parse_endpoint(proxy), timeout, debug=debug)
    try:
        source = open_file(backend, file)
    except CaptureError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    if debug:  # the pair log alone, on stderr, whatever logging is configured elsewhere
        pair_log.addHandler(handler)
        pair_log.setLevel(logging.INFO)
        pair_log.propagate = False
    out = sys.stdout
    out.write(",".join(OFFLINE_CSV_FIELDS) + "\n")
    failure: CaptureError | None = None
    try:
        for frame in source.frames():
            pair = analyzer.process(frame)
            if pair is not None:
                out.write(offline_csv_line(pair) + "\n")
    except CaptureError as exc:
        failure = exc  # the pairs of the frames read so far are out; the summary follows
    finally:
        source.close()
        pair_log.removeHandler(handler)
    _summary(analyzer)
    if failure is not None:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(2)


def _summary(analyzer: Analyzer) -> None:
    stats, open_entries, _ = analyzer.snapshot()
    pairs = " ".join(f"{k}={v}" for k, v in sorted(stats.pairs.items())) or "none"
    skipped = " ".join(f"{k}={v}" for k, v in sorted(stats.skipped.items())) or "none"
    retrans = " ".join(f"{k}={v}" for k, v in sorted(stats.retransmissions.items())) or "none"
    typer.echo(
        f"# frames={analyzer.frames} pairs: {pairs}; retransmissions: {retrans}; "
        f"skipped: {skipped}; open at end: {open_entries}",
        err=True,
    )


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="default: $ANALYZER_HTTP_HOST")] = None,
    port: Annotated[
        int | None, typer.Option(help="default: $ANALYZER_HTTP_PORT", min=1, max=65535)
    ] = None,
) -> None:
    """Run the HTTP service (settings from ANALYZER_* variables; docs/configuration.md)."""
    serve(load_settings(Settings, "analyzer", host, port))


def serve(settings: Settings | None = None) -> None:
    """Serve with these settings (default: the environment's; bad ones exit 2, one line each)."""
    from analyzer.main import create_app  # FastAPI and the rest: not for `analyzer offline`

    if settings is None:
        settings = load_settings(Settings, "analyzer")
    try:  # before the server: a missing extra is one line, not a failed startup's traceback
        require_backend(settings.analyzer_backend)
    except CaptureError as exc:
        sys.exit(f"analyzer: {exc}")
    service_kit.serve(
        create_app(settings), settings, log_level=settings.analyzer_log_level, access_log=False
    )


def main() -> None:
    app()


__all__ = ["app", "main", "serve"]

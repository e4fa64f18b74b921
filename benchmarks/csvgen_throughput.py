"""Benchmark: csvgen's rows/s generating and validating, and its memory against the row count.

A week at 50 invites/s (30.24 million rows, the issue's target size) is generated to a file
and validated, each in a fresh child process that reports its rows, its time (imports and
interpreter start excluded) and its peak RSS (getrusage ru_maxrss). The baseline, measured in
the same run the same way, is one hour at the same rate (180,000 rows): if memory is flat in
the row count, the week's peak RSS equals the hour's. Generation writes through the same
path as `csvgen generate -o FILE`, validation reads like `csvgen validate FILE`.
The last line holds the week's figures as key=value pairs.

    uv run python benchmarks/csvgen_throughput.py [--rate 50] [--days 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RATE = 50.0
PODS = 20  # 10 caller pods x 100 phones


@dataclass
class Measurement:
    label: str
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    def line(self) -> str:
        return (
            f"{self.label:<36} {self.rows:>11,} {self.seconds:>8.2f} "
            f"{self.rows_per_s:>13,.0f} {self.peak_rss_mb:>9.1f}"
        )


HEADER = f"{'step':<36} {'rows':>11} {'seconds':>8} {'rows/s':>13} {'peak MB':>9}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_generate(duration_s: float, rate: float, arrivals: str, path: Path) -> None:
    from scenario_gen.output import write_file
    from scenario_gen.scenario import Scenario
    from scenario_gen.spec import GenerateRequest

    request = GenerateRequest.model_validate(
        {
            "shape": {"kind": "constant", "rate": rate, "duration_s": duration_s},
            "arrivals": arrivals,
            "pods": PODS,
            "seed": 1,
        }
    )
    scenario = Scenario(request)
    start = time.perf_counter()
    rows = write_file(scenario, path)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def child_validate(path: Path) -> None:
    from scenario_csv import text_lines, validate

    start = time.perf_counter()
    with path.open("rb") as stream:
        run = validate(text_lines(stream))
        defects = sum(1 for _ in run)
    seconds = time.perf_counter() - start
    if defects:
        raise SystemExit(f"{path}: {defects} defects")
    result = {"rows": run.summary.rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
    print(json.dumps(result))


def measure(label: str, *args: str) -> Measurement:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(label, int(data["rows"]), float(data["seconds"]), data["peak_rss_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=RATE, help="invites/s (50)")
    parser.add_argument("--days", type=float, default=7, help="length of the long file (7)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            child_generate(float(rest[0]), float(rest[1]), rest[2], Path(rest[3]))
        else:
            child_validate(Path(rest[0]))
        return

    directory = args.keep or Path(tempfile.mkdtemp(prefix="csvgen-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    rate = str(args.rate)
    long_s = args.days * 86400
    try:
        print(f"# constant {args.rate:g} invites/s, {PODS} pods; files in {directory}")
        print("# baseline: 1 hour; then the long file; each step in a fresh process")
        print("# peak MB: the process's peak RSS, imports included")
        print(HEADER)
        long = f"{args.days:g} days"
        plan = [
            ("1 hour", "deterministic", "hour.csv"),
            ("1 hour", "poisson", "hour-poisson.csv"),
            (long, "deterministic", "long.csv"),
            (long, "poisson", "long-poisson.csv"),
        ]
        results: list[tuple[str, Measurement, Measurement]] = []
        for span, arrivals, name in plan:
            duration = "3600" if span == "1 hour" else str(long_s)
            path = str(directory / name)
            made = measure(
                f"{span} generate ({arrivals})", "generate", duration, rate, arrivals, path
            )
            print(made.line(), flush=True)
            checked = measure(f"{span} validate ({arrivals})", "validate", path)
            print(checked.line(), flush=True)
            results.append((span, made, checked))
        hour_peak = max(max(m.peak_rss_mb, c.peak_rss_mb) for _, m, c in results[:2])
        long_peak = max(max(m.peak_rss_mb, c.peak_rss_mb) for _, m, c in results[2:])
        _, generate, validate = results[2]
        size_gb = (directory / "long.csv").stat().st_size / 1e9
        print(
            f"# {long} file {size_gb:.2f} GB, {generate.rows / results[0][1].rows:.0f}x the hour's "
            f"rows; peak RSS 1 hour {hour_peak:.1f} MB, {long} {long_peak:.1f} MB "
            f"(ratio {long_peak / hour_peak:.2f})"
        )
        print(
            f"generate_rows_per_s={generate.rows_per_s:.0f} "
            f"validate_rows_per_s={validate.rows_per_s:.0f} peak_rss_mb={long_peak:.1f}"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()

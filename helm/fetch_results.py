#!/usr/bin/env python3
"""Fetch a run's results from a cluster in the format `testbed run` writes locally.

    helm/fetch_results.py [-n NAMESPACE] [-r RELEASE] [--run RUN_ID] [-o DIR]

writes into DIR (default results/k8s-<run>):

- run_log.csv: the scenario controller's run log (GET /runs/{id}/log; default: the current run)
- response_times.csv: every analyzer's samples (GET /samples?format=csv), one header
- calls.csv: every client pod's call records (GET /calls, paged), columns as the pods give them

Nothing is exposed or port-forwarded: each request runs inside the pod that serves it
(`kubectl exec ... python`), against 127.0.0.1, with the pod's own Python. Needs kubectl
with access to the namespace. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# run inside a pod: print the body of GET url (argv[1]); exit 1 with the reason on failure
_FETCH = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=300) as r:\n"
    "    sys.stdout.write(r.read().decode())\n"
)
SAMPLES_PAGE = 1_000_000
CALLS_PAGE = 100_000
RUN_LOG_HEADER = "seq,caller,callee,pod,offset_s,scheduled_at,sent_at,lag_ms,status\n"
CALLS_HEADER = "call_id,caller,callee,outcome,reason\n"

Runner = Callable[[Sequence[str]], str]


def kubectl(args: Sequence[str]) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


class Cluster:
    def __init__(self, namespace: str, release: str, run: Runner = kubectl) -> None:
        self.namespace = namespace
        self.release = release
        self.run = run

    def pods(self, component: str) -> list[str]:
        selector = (
            f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component={component}"
        )
        out = self.run(["-n", self.namespace, "get", "pods", "-l", selector, "-o", "json"])
        items = json.loads(out)["items"]
        return sorted(p["metadata"]["name"] for p in items if p["status"].get("phase") == "Running")

    def get(self, pod: str, container: str, url: str) -> str:
        return self.run(
            ["-n", self.namespace, "exec", pod, "-c", container, "--", "python", "-c", _FETCH, url]
        )


def run_log(cluster: Cluster, run_id: str | None) -> tuple[str, str]:
    """(run id, run log CSV) of the given run or the scenario controller's current one."""
    pods = cluster.pods("scenario-controller")
    if not pods:
        raise RuntimeError("no running scenario-controller pod")
    pod = pods[0]
    base = "http://127.0.0.1:8001"
    if run_id is None:
        try:
            current: dict[str, Any] = json.loads(
                cluster.get(pod, "scenario-controller", f"{base}/runs/current")
            )
        except RuntimeError as exc:
            raise RuntimeError(f"the scenario controller has no current run ({exc})") from None
        run_id = str(current["id"])
    return str(run_id), cluster.get(pod, "scenario-controller", f"{base}/runs/{run_id}/log")


def response_times(cluster: Cluster) -> str:
    """Every analyzer's samples as one CSV (timestamp,proxy,pair,call_id,cseq,response_time_ms)."""
    header = ""
    rows: list[str] = []
    for pod in cluster.pods("sip-proxy"):
        offset = 0
        while True:
            url = f"http://127.0.0.1:9101/samples?format=csv&offset={offset}&limit={SAMPLES_PAGE}"
            lines = cluster.get(pod, "analyzer", url).splitlines(keepends=True)
            if not lines:
                break
            header = header or lines[0]
            rows.extend(lines[1:])
            offset += len(lines) - 1
            if len(lines) - 1 < SAMPLES_PAGE:
                break
    return header + "".join(rows)


def calls(cluster: Cluster) -> str:
    """Every client pod's finished calls, as `testbed run` writes calls.csv."""
    records: list[dict[str, Any]] = []
    for pod in cluster.pods("sip-client"):
        offset = 0
        while True:
            url = f"http://127.0.0.1:8090/calls?offset={offset}&limit={CALLS_PAGE}"
            page = json.loads(cluster.get(pod, "sip-client", url))
            records.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
    if not records:
        return CALLS_HEADER
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def fetch(cluster: Cluster, run_id: str | None, out_dir: Path | None) -> Path:
    run_id, log = run_log(cluster, run_id)
    out = out_dir or Path("results") / f"k8s-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_log.csv").write_text(log or RUN_LOG_HEADER)
    (out / "response_times.csv").write_text(response_times(cluster))
    (out / "calls.csv").write_text(calls(cluster), newline="")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fetch_results.py", description=__doc__)
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("-r", "--release", default="testbed")
    parser.add_argument("--run", default=None, help="run id (default: the current run)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    try:
        out = fetch(Cluster(args.namespace, args.release), args.run, args.output)
    except (RuntimeError, ValueError, KeyError) as exc:
        print(f"fetch_results: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

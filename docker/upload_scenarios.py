#!/usr/bin/env python
"""testbed-upload-scenarios: upload scenario CSVs to a scenario controller.

    testbed-upload-scenarios [--url URL] [--timeout SECONDS] PATH...

Each PATH is a CSV file or a directory of them (*.csv); each is stored under its file name
without `.csv` through the controller's own API (POST /scenarios?name=...), so it is validated
exactly like an upload from the panel and a defective file is refused with its defects. The
store only lists what came in through the API, so a file merely dropped into SCENARIO_DIR would
not show. The chart runs this from the pod's postStart hook with its ConfigMap of scenarios;
compose can run it as a one-shot service.

The URL defaults to the controller in the same container: SCENARIO_CONTROLLER_HOST and
SCENARIO_CONTROLLER_PORT, as the service reads them. It waits for /health up to the timeout.
An upload needs the API token: the environment variable API_TOKEN (the controller's own, in
its container), sent as `Authorization: Bearer`; without it the script stops at once.
Exit 0 when every file was stored, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_ANY = {"", "0.0.0.0", "::"}
TOKEN_ENV = "API_TOKEN"


def api_token() -> str:
    """API_TOKEN from the environment, or SystemExit saying what is wrong (never the token)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(
            f"{TOKEN_ENV} is not set: the scenario controller refuses uploads without its API "
            f"token (set {TOKEN_ENV} to the controller's token)"
        )
    # stdlib only (the script runs in any Python): the header rule of libs/api-token
    if not all("\x21" <= char <= "\x7e" for char in token):
        raise SystemExit(f"{TOKEN_ENV} holds characters other than visible ASCII")
    return token


def default_url() -> str:
    host = os.environ.get("SCENARIO_CONTROLLER_HOST", "").strip()
    port = os.environ.get("SCENARIO_CONTROLLER_PORT", "").strip() or "8001"
    return f"http://{'127.0.0.1' if host in _ANY else host}:{port}"


def csv_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        # a ConfigMap volume holds its keys as symlinks into ..data/; glob follows them
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    return files


def wait_healthy(base: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=3) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


def upload(base: str, path: Path, token: str) -> tuple[bool, str]:
    name = path.name.removesuffix(".csv")
    request = urllib.request.Request(
        f"{base}/scenarios?{urllib.parse.urlencode({'name': name})}",
        data=path.read_bytes(),
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            summary = json.load(response)
            return True, f"{name}: stored ({summary.get('rows')} rows)"
    except urllib.error.HTTPError as exc:
        return False, f"{name}: refused ({exc.code}): {exc.read().decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{name}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="testbed-upload-scenarios", description="upload scenario CSVs to the controller"
    )
    parser.add_argument("paths", nargs="+", type=Path, help="CSV files or directories of them")
    parser.add_argument("--url", default=None, help="the controller (default: this container's)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it")
    args = parser.parse_args(argv)
    base = (args.url or default_url()).rstrip("/")
    files = csv_files(args.paths)
    if not files:
        print("no scenario files found", file=sys.stderr)
        return 0
    token = api_token()  # before waiting: a missing token is known at once
    if not wait_healthy(base, args.timeout):
        print(f"{base}/health did not answer within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    ok = True
    for path in files:
        stored, message = upload(base, path, token)
        print(message, file=sys.stdout if stored else sys.stderr)
        ok = ok and stored
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""HEALTHCHECK of the testbed's Python images: GET /health on the service's own port.

    testbed-healthcheck HOST_VAR PORT_VAR DEFAULT_PORT [PATH]

Reads the host and port from the same environment variables the service reads (so a
container started with another port is still checked on the right one) and exits 0 only on
HTTP 200. Standard library only: the images carry no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# a service bound to every address is reached on loopback
_ANY = {"", "0.0.0.0", "::"}


def health_url(host_var: str, port_var: str, default_port: str, path: str = "/health") -> str:
    host = os.environ.get(host_var, "").strip()
    port = os.environ.get(port_var, "").strip() or default_port
    if host in _ANY:
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    url = health_url(*argv[1:])
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            ok = bool(response.status == 200)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""`python -m analyzer [--host H] [--port P]`: the service on ANALYZER_HTTP_HOST:PORT (what
`analyzer serve` runs; `analyzer offline` is the command-line tool)."""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.cli import serve
from analyzer.config import Settings
from service_kit import command_line


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        command_line(Settings, "analyzer", "SIP response times at a proxy, served over HTTP.", argv)
    )


if __name__ == "__main__":
    main()

"""`python -m service_kit.openapi [--check]`: write (or check) services/<name>/openapi.json of
every service, generated from its create_app() with default settings, keys sorted so that a
diff shows only what changed. Run from the repository root; scripts/openapi.sh does."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from service_kit.services import Service, discover

REGENERATE = "scripts/openapi.sh"


def document(service: Service) -> str:
    spec = service.default_app().openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def target(service: Service) -> Path:
    return service.directory / "openapi.json"


def stale(root: Path) -> list[Path]:
    """The committed documents that differ from what their service generates (or are missing)."""
    return [
        target(s)
        for s in discover(root)
        if not target(s).is_file() or target(s).read_text() != document(s)
    ]


def write(root: Path) -> list[Path]:
    """Regenerate every document; returns the ones that changed."""
    changed = []
    for service in discover(root):
        text = document(service)
        path = target(service)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service_kit.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale(args.root)
        for path in paths:
            print(f"stale: {path} (run {REGENERATE})", file=sys.stderr)
        raise SystemExit(1 if paths else 0)
    for path in write(args.root):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

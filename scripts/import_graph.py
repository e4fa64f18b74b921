"""Print the import graph between the repository's parts, and what breaks its rules.

    uv run --frozen python scripts/import_graph.py

One line per part (a workspace member's package, or a subpackage of the testbed CLI) with the
parts it imports, then the cycles between the testbed's subpackages and the imports of a
service from outside it other than its settings (`<service>.config`, the launch contract).
The rules themselves are enforced by import-linter (`uv run --frozen lint-imports`, contracts in
pyproject.toml); this script is the picture for a reader and for before/after comparisons.
"""

from __future__ import annotations

import itertools
import sys

import grimp

LIBRARIES = (
    "api_token",
    "kamailio_rpc",
    "prom_answer",
    "scaling_policy",
    "scenario_csv",
    "scenario_gen",
    "service_kit",
    "sip_core",
    "testbed_db",
    "testbed_messages",
)
SERVICES = (
    "analyzer",
    "csvgen",
    "policy_controller",
    "scenario_controller",
    "sip_client",
    "sip_controller",
)
TESTBED = "testbed"


def _part(module: str, testbed_parts: set[str]) -> str:
    """A module's part: `testbed.<subpackage>` inside the testbed, else its top package."""
    prefix = ".".join(module.split(".")[:2])
    return prefix if prefix in testbed_parts else module.split(".")[0]


def main() -> int:
    # a member that is not installed (renamed, removed) is simply not drawn
    packages = (p for p in (*LIBRARIES, *SERVICES, TESTBED) if _importable(p))
    # imports under `if TYPE_CHECKING:` run nothing: left out, as lint-imports does
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    testbed_parts = {m for m in graph.find_children(TESTBED) if graph.find_children(m)}
    edges: dict[str, set[str]] = {}
    service_imports: list[str] = []
    for module in sorted(graph.modules):
        source = _part(module, testbed_parts)
        for imported in graph.find_modules_directly_imported_by(module):
            target = _part(imported, testbed_parts)
            if target != source:
                edges.setdefault(source, set()).add(target)
            top, src_top = imported.split(".")[0], module.split(".")[0]
            if top in SERVICES and src_top != top and not imported.endswith(".config"):
                service_imports.append(f"{module} -> {imported}")
    print("part -> parts it imports")
    for source in sorted(edges):
        print(f"  {source:<28} {', '.join(sorted(edges[source]))}")
    cycles = [
        f"{a} <-> {b}"
        for a, b in itertools.combinations(sorted(testbed_parts), 2)
        if b in edges.get(a, set()) and a in edges.get(b, set())
    ]
    print(f"cycles between testbed subpackages: {len(cycles)}")
    for cycle in cycles:
        print(f"  {cycle}")
    print(
        f"imports of a service's code from outside it (settings excepted): {len(service_imports)}"
    )
    for line in service_imports:
        print(f"  {line}")
    return 0


def _importable(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        print(f"(not installed: {package})", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())

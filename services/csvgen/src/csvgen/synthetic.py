"""Writes the SYNTHETIC Milano-format fixture `data/milano-synthetic-day.tsv` (the lines come
from scenario_gen.synthetic, seeded): `python -m csvgen.synthetic [PATH]` reproduces the file
byte for byte (a test checks that)."""

from __future__ import annotations

import sys
from pathlib import Path

from scenario_gen.synthetic import synthetic_lines

PATH = Path(__file__).parent / "data" / "milano-synthetic-day.tsv"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else PATH
    path.write_text("".join(synthetic_lines()), encoding="ascii", newline="\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

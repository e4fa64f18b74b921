"""Reading a rate table for the `table` shape: one `seconds;rate` point a line (`,`, tab or
spaces also separate), an optional header line first, blank lines and `#` comments ignored."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

from scenario_gen.errors import ShapeError

_SPLIT = re.compile(r"[;,\t ]+")
_NAMES = ("seconds", "rate")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_table(lines: Iterable[str], source: str) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    header_allowed = True
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = _SPLIT.split(line)
        if len(fields) != 2:
            raise ShapeError(f"{source}: line {number}: expected 'seconds;rate', got {line!r}")
        values = [_number(text) for text in fields]
        if header_allowed and values == [None, None]:
            header_allowed = False
            continue
        header_allowed = False
        for name, text, value in zip(_NAMES, fields, values, strict=True):
            if value is None:
                raise ShapeError(f"{source}: line {number}: {name}: {text!r} is not a number >= 0")
        seconds, rate = (v if v is not None else 0.0 for v in values)  # all set, checked above
        if points and seconds <= points[-1][0]:
            raise ShapeError(
                f"{source}: line {number}: seconds: {fields[0]} is not after {points[-1][0]:g}"
            )
        points.append((seconds, rate))
    if not points:
        raise ShapeError(f"{source}: no 'seconds;rate' points")
    return points


def read_table(path: Path) -> list[tuple[float, float]]:
    try:
        with path.open(encoding="utf-8") as lines:
            return parse_table(lines, str(path))
    except OSError as exc:
        raise ShapeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ShapeError(f"{path}: not UTF-8 text") from None

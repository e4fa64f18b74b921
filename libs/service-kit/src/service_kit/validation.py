"""pydantic's ValidationError as readable lines: `where: problem`, one per error, without the
rejected input (it may be a secret, or a NaN that cannot be written back as JSON)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import ValidationError
from pydantic_core import ErrorDetails

Location = tuple[int | str, ...]


def dotted(loc: Location) -> str:
    """('shape', 'ramp', 'from_rate') -> 'shape.ramp.from_rate' (a JSON path)."""
    return ".".join(str(part) for part in loc)


def problem(item: ErrorDetails, replace: Mapping[str, str] | None = None) -> str:
    """One error's message: `replace` by error type if given there, else pydantic's, without
    the "Value error, " a validator's ValueError gets (its text is already the message)."""
    if replace and item["type"] in replace:
        return replace[item["type"]]
    return str(item["msg"]).removeprefix("Value error, ")


def problem_lines(
    error: ValidationError,
    where: Callable[[Location], str] = dotted,
    whole: str = "",
    replace: Mapping[str, str] | None = None,
) -> list[str]:
    """One `where: problem` line per error. An error of the whole input (no location) is
    placed at `whole` (or is the problem alone when `whole` is empty), and a problem that
    already starts with its place (a validator naming its field) is not prefixed again."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = problem(item, replace)
        place = where(item["loc"]) if item["loc"] else whole
        lines.append(message if not place or message.startswith(place) else f"{place}: {message}")
    return lines


def describe(error: ValidationError, whole: str = "", separator: str = "; ") -> str:
    """Every problem on one line, JSON paths as places (a message, a body, a file)."""
    return separator.join(problem_lines(error, whole=whole))

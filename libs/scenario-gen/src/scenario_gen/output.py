"""Writing a scenario out: to a file atomically (so a failure leaves no half-written file) or
to a stream. Returns the number of rows written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from scenario_gen.scenario import Scenario


def write_stream(scenario: Scenario, out: TextIO) -> int:
    lines = 0
    for text in scenario.text():
        out.write(text)
        lines += text.count("\n")
    out.flush()
    return lines - 1  # the header


def write_file(scenario: Scenario, path: Path) -> int:
    """Write to a temporary file next to `path`, then rename it over `path`."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a plain open would not
    try:
        with os.fdopen(handle, "w", encoding="ascii", newline="\n", buffering=1 << 20) as out:
            rows = write_stream(scenario, out)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return rows

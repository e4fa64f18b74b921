"""Scenario files on disk, each validated before it is kept, with its summary beside it.

The summary (`<name>.json`) is written atomically after the CSV; one that cannot be read (a
crash of an older version mid-write, a disk fault, an edit by hand) makes that scenario
unavailable with a clear error and is left out of the listing with a warning, never a failure
of the listing or of /health.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from scenario_controller.files import write_atomic
from scenario_controller.timeline import rate_series
from scenario_csv import Defect, ScenarioError, text_lines, validate

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_DEFECTS_SHOWN = 200
MAX_PLOT_POINTS = 2000


class ScenarioRejected(Exception):
    """The file has defects; nothing was stored."""

    def __init__(self, defects: list[Defect], total: int) -> None:
        super().__init__(f"{total} defect(s), first: {defects[0] if defects else '-'}")
        self.defects = defects
        self.total = total


class BadScenarioName(ValueError):
    pass


class UnknownScenario(KeyError):
    pass


class CorruptScenario(UnknownScenario):
    """The scenario's summary file cannot be read; it has to be uploaded again."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(name)
        self.message = (
            f"scenario {name!r}: its summary file is unreadable ({problem}); upload it again"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class StoredScenario:
    name: str
    format: str
    rows: int
    duration_s: float
    peak_rate: float
    mean_rate: float
    peak_second_invites: int
    pods: list[int]
    pods_needed: int
    phones_per_pod: int
    size_bytes: int
    # invites per second, summed into at most MAX_PLOT_POINTS buckets: [[start_s, per_s], ...]
    rate: list[tuple[float, float]]

    def view(self, with_rate: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_rate:
            data.pop("rate")
        return data


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadScenarioName(
            f"scenario name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "not starting with a dot"
        )
    return name.removesuffix(".csv")


def _downsample(series: list[tuple[int, int]]) -> list[tuple[float, float]]:
    if len(series) <= MAX_PLOT_POINTS:
        return [(float(s), float(c)) for s, c in series]
    width = -(-len(series) // MAX_PLOT_POINTS)
    out = []
    for start in range(0, len(series), width):
        chunk = series[start : start + width]
        out.append((float(chunk[0][0]), sum(c for _s, c in chunk) / len(chunk)))
    return out


class ScenarioStore:
    def __init__(self, directory: Path, pairing_convention: bool = True) -> None:
        self.directory = directory
        self.pairing_convention = pairing_convention
        directory.mkdir(parents=True, exist_ok=True)
        self._warned: set[tuple[str, float]] = set()  # (file, mtime): warn once per version

    def _csv(self, name: str) -> Path:
        return self.directory / f"{name}.csv"

    def _meta(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def save(self, name: str, stream: IO[bytes]) -> StoredScenario:
        """Validate `stream` (streaming, bounded memory) and keep it only if it has no defect."""
        name = check_name(name)
        with tempfile.NamedTemporaryFile(
            dir=self.directory, prefix=".upload-", delete=False
        ) as tmp:
            shutil.copyfileobj(stream, tmp, 1 << 20)
            tmp_path = Path(tmp.name)
        try:
            with tmp_path.open("rb") as data:
                run = validate(text_lines(data), pairing_convention=self.pairing_convention)
                shown: list[Defect] = []
                for defect in run:
                    if len(shown) < MAX_DEFECTS_SHOWN:
                        shown.append(defect)
                summary = run.summary
            if summary.defects:
                raise ScenarioRejected(shown, summary.defects)
            with tmp_path.open("rb") as data:
                rate = _downsample(rate_series(text_lines(data), name))
            stored = StoredScenario(
                name=name,
                format=summary.format.value if summary.format else "?",
                rows=summary.rows,
                duration_s=summary.duration_s,
                peak_rate=summary.peak_rate,
                mean_rate=round(summary.mean_rate, 3),
                peak_second_invites=summary.peak_second_invites,
                pods=summary.pods,
                pods_needed=summary.pods_needed,
                phones_per_pod=summary.phones_per_pod,
                size_bytes=tmp_path.stat().st_size,
                rate=rate,
            )
            os.replace(tmp_path, self._csv(name))
            write_atomic(self._meta(name), json.dumps(asdict(stored)))
            return stored
        finally:
            tmp_path.unlink(missing_ok=True)

    def get(self, name: str) -> StoredScenario:
        name = check_name(name)
        try:
            data = json.loads(self._meta(name).read_bytes())
            data["rate"] = [(float(s), float(r)) for s, r in data["rate"]]
            return StoredScenario(**data)
        except FileNotFoundError:
            raise UnknownScenario(name) from None
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
            raise CorruptScenario(name, f"{type(exc).__name__}: {exc}"[:200]) from None

    def all(self) -> list[StoredScenario]:
        """Every readable scenario; an unreadable one is left out with a warning."""
        stored = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                stored.append(self.get(path.stem))
            except CorruptScenario as exc:
                self._warn_once(path, str(exc))
            except (UnknownScenario, BadScenarioName):  # deleted meanwhile; not ours
                continue
        return stored

    def _warn_once(self, path: Path, message: str) -> None:
        try:
            key = (path.name, path.stat().st_mtime)
        except OSError:
            return
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (left out of the listing)", message)

    def delete(self, name: str) -> None:
        name = check_name(name)
        if not self._meta(name).exists():
            raise UnknownScenario(name)
        self._meta(name).unlink()
        self._csv(name).unlink(missing_ok=True)

    def lines(self, name: str) -> Iterator[str]:
        """The stored file's lines, streaming."""
        path = self._csv(check_name(name))
        if not path.exists():
            raise UnknownScenario(name)
        with path.open("rb") as data:
            yield from text_lines(data)


__all__ = [
    "CorruptScenario",
    "ScenarioError",
    "ScenarioRejected",
    "ScenarioStore",
    "StoredScenario",
    "UnknownScenario",
]

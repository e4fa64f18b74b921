"""A CSV file written row by row and flushed at once, so a run that dies keeps what it saw."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any


class CsvStream:
    """Columns are those of the rows so far, in order of appearance; a row bringing a new one
    (a proxy seen for the first time) rewrites the file under the wider header."""

    def __init__(self, path: Path, columns: Iterable[str] = ()) -> None:
        self.path = path
        self.columns: list[str] = list(columns)
        self.rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._rewrite()

    def append(self, row: Mapping[str, Any]) -> None:
        cells = {k: ("" if v is None else v) for k, v in row.items()}
        self.rows.append(cells)
        new = [k for k in cells if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        assert self._file is not None
        csv.DictWriter(self._file, fieldnames=self.columns).writerow(cells)
        self._file.flush()

    def _rewrite(self) -> None:
        self.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns or ["t_s"])
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)
        self._file = self.path.open("a", newline="")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """All rows at once, under the columns of all of them."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    stream = CsvStream(path, columns)
    try:
        for row in rows:
            stream.append(row)
    finally:
        stream.close()

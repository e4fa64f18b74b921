"""A defect names the line and the field; readers raise it, the validator lists them all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Defect:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class ScenarioError(ValueError):
    """The first defect a reader met; `source` (a file name) prefixes the message when given."""

    def __init__(self, defect: Defect, source: str | None = None) -> None:
        self.defect = defect
        self.source = source
        super().__init__(f"{source}: {defect}" if source else str(defect))


class FieldError(ValueError):
    """A field's text is not a valid value; the caller adds line and field name."""

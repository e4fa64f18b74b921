"""The scenario CSV formats: typed rows, streaming readers and writers, and the validator.

from scenario_csv import validate
run = validate(open("scenario.csv"))
for defect in run:
    print(defect)            # line 12: caller: '700' is not zero-padded: ...
print(run.summary.rows, run.summary.pods_needed)
"""

from scenario_csv.convert import main_to_ten_minute, ten_minute_to_main
from scenario_csv.errors import Defect, FieldError, ScenarioError
from scenario_csv.formats import (
    HEADERS,
    MAIN_FIELDS,
    SEPARATOR,
    TEN_MINUTE_FIELDS,
    TEN_MINUTES_MS,
    ScenarioFormat,
    detect_format,
    format_rate,
)
from scenario_csv.ids import PARTNERS, VALID_IDS, partner_of, phone_id
from scenario_csv.reader import read_main, read_ten_minute, text_lines
from scenario_csv.realized import RateCheck
from scenario_csv.rows import ScenarioRow, TenMinuteRow
from scenario_csv.validator import ScenarioSummary, Validation, ValidationOptions, validate
from scenario_csv.writer import main_line, ten_minute_line, write_main, write_ten_minute

__all__ = [
    "HEADERS",
    "MAIN_FIELDS",
    "PARTNERS",
    "SEPARATOR",
    "TEN_MINUTES_MS",
    "TEN_MINUTE_FIELDS",
    "VALID_IDS",
    "Defect",
    "FieldError",
    "RateCheck",
    "ScenarioError",
    "ScenarioFormat",
    "ScenarioRow",
    "ScenarioSummary",
    "TenMinuteRow",
    "Validation",
    "ValidationOptions",
    "detect_format",
    "format_rate",
    "main_line",
    "main_to_ten_minute",
    "partner_of",
    "phone_id",
    "read_main",
    "read_ten_minute",
    "ten_minute_line",
    "ten_minute_to_main",
    "text_lines",
    "validate",
    "write_main",
    "write_ten_minute",
]

import pytest

from scenario_csv import HEADERS, ScenarioFormat, detect_format, format_rate, partner_of, phone_id
from scenario_csv.ids import id_problem, pairing_problem


def test_headers_and_detection():
    assert HEADERS[ScenarioFormat.MAIN] == (
        "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
    )
    assert HEADERS[ScenarioFormat.TEN_MINUTE] == (
        "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee"
    )
    assert detect_format("\ufeff" + HEADERS[ScenarioFormat.MAIN] + "\r\n") is ScenarioFormat.MAIN
    assert detect_format(HEADERS[ScenarioFormat.TEN_MINUTE]) is ScenarioFormat.TEN_MINUTE
    assert detect_format("4600;4700;1000;0;1") is None


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (12, "12"),
        (12.5, "12.5"),
        (1 / 3, "0.333"),
        (41.98765, "41.988"),
        (0.0004, "0.0004"),
        (0.012345, "0.0123"),
        (0, "0"),
    ],
)
def test_rates_are_written_compactly_without_losing_small_ones(rate, text):
    assert format_rate(rate) == text


def test_ids_are_padded_and_paired():
    assert phone_id(7, 0) == "0700"
    assert phone_id(46, 0) == "4600"
    assert partner_of("4600") == "4700"
    assert partner_of("4700") is None
    with pytest.raises(ValueError, match="0-99"):
        phone_id(100, 0)


def test_id_problems_say_how_to_fix_them():
    assert "'0700'" in id_problem("700")
    assert "5 digits" in id_problem("04000")
    assert "is empty" in id_problem("")
    assert "not a phone ID" in id_problem("07a0")
    assert pairing_problem("4600", "4700") is None
    assert "callee is 4701" in str(pairing_problem("4601", "4800"))
    assert "odd pod 47" in str(pairing_problem("4700", "4800"))

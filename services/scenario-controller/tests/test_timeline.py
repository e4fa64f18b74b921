from scenario_controller.timeline import Due, rate_series, timeline

MAIN = [
    "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s",
    "0000;0100;500;0;2",
    "0200;0300;500;0;2",
    "0400;0500;1000;1;1",
    "0600;0700;1000;2;1",
]
TEN = [
    "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee",
    "0;0;3;7200;7300",
    "0;1000;3;0400;0500",
    "0;2500;3;5600;5700",
]


def test_offsets_are_cumulative_waits():
    assert list(timeline(MAIN)) == [
        Due(0, 0.0, "0000", "0100"),
        Due(1, 0.5, "0200", "0300"),
        Due(2, 1.0, "0400", "0500"),
        Due(3, 2.0, "0600", "0700"),
    ]
    assert [d.pod for d in timeline(MAIN)] == ["00", "02", "04", "06"]


def test_ten_minute_variant_uses_its_milliseconds():
    assert [(d.offset, d.caller) for d in timeline(TEN)] == [
        (0.0, "7200"),
        (1.0, "0400"),
        (2.5, "5600"),
    ]


def test_rate_series_counts_invites_per_second():
    assert rate_series(MAIN) == [(0, 2), (1, 1), (2, 1)]
    assert rate_series(TEN) == [(0, 1), (1, 1), (2, 1)]

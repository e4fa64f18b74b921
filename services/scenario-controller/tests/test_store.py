import io
from pathlib import Path

import pytest

from scenario_controller.store import (
    BadScenarioName,
    ScenarioRejected,
    ScenarioStore,
    UnknownScenario,
)

GOOD = (
    "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n"
    "0000;0100;500;0;2\n0200;0300;500;0;2\n0400;0500;500;1;2\n0600;0700;500;1;2\n"
)


@pytest.fixture
def store(tmp_path: Path) -> ScenarioStore:
    return ScenarioStore(tmp_path / "scenarios")


def test_a_valid_file_is_stored_with_its_summary(store: ScenarioStore):
    stored = store.save("two-per-second", io.BytesIO(GOOD.encode()))
    assert (stored.rows, stored.pods_needed, stored.peak_rate) == (4, 8, 2.0)
    assert stored.rate == [(0.0, 2.0), (1.0, 2.0)]
    assert [s.name for s in store.all()] == ["two-per-second"]
    assert list(store.lines("two-per-second"))[1].startswith("0000;0100")
    store.delete("two-per-second")
    assert store.all() == []
    with pytest.raises(UnknownScenario):
        store.get("two-per-second")


def test_the_papers_padding_bug_is_rejected_with_its_line_and_nothing_is_stored(
    store: ScenarioStore,
):
    bad = GOOD.replace("0600;0700", "600;700")
    with pytest.raises(ScenarioRejected) as info:
        store.save("padding", io.BytesIO(bad.encode()))
    first = info.value.defects[0]
    assert (first.line, first.field) == (5, "caller")
    assert "padded" in first.message
    assert store.all() == []
    assert list(store.directory.iterdir()) == []  # the upload's temporary file is gone too


def test_negative_waits_and_an_inconsistent_timeline_are_named(store: ScenarioStore):
    bad = GOOD.replace("0200;0300;500;0;2", "0200;0300;-5;0;2").replace(
        "0600;0700;500;1;2", "0600;0700;500;7;2"
    )
    with pytest.raises(ScenarioRejected) as info:
        store.save("bad", io.BytesIO(bad.encode()))
    fields = {(d.line, d.field) for d in info.value.defects}
    assert (3, "wait_before_next_in_ms") in fields
    assert any(field == "seconds_since_start" for _line, field in fields)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 101, "sp ace"])
def test_bad_names(store: ScenarioStore, name: str):
    with pytest.raises(BadScenarioName):
        store.save(name, io.BytesIO(GOOD.encode()))

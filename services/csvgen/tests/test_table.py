import pytest

from csvgen.table import parse_table, read_table
from scenario_gen.errors import ShapeError


def test_separators_header_and_comments():
    lines = ["seconds;rate\n", "0;12  # start\n", "\n", "300,18\n", "600\t24\n", "900 0\n"]
    assert parse_table(lines, "t") == [(0, 12), (300, 18), (600, 24), (900, 0)]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["0;1\n", "10;x\n"], "t: line 2: rate: 'x' is not a number >= 0"),
        (["0;1\n", "0;2\n"], "t: line 2: seconds: 0 is not after 0"),
        (["0;1;2\n"], "t: line 1: expected 'seconds;rate'"),
        (["0;-1\n"], "t: line 1: rate: '-1' is not a number >= 0"),
        (["# nothing\n"], "t: no 'seconds;rate' points"),
    ],
)
def test_bad_tables_name_line_and_field(lines, message):
    with pytest.raises(ShapeError) as caught:
        parse_table(lines, "t")
    assert str(caught.value).startswith(message)


def test_unreadable_files(tmp_path):
    with pytest.raises(ShapeError, match="cannot read"):
        read_table(tmp_path / "none.txt")
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe0;1\n")
    with pytest.raises(ShapeError, match="not UTF-8"):
        read_table(binary)

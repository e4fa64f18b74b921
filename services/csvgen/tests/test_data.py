import subprocess
import sys

from csvgen.config import PACKAGED_DATA
from scenario_gen.synthetic import synthetic_lines

FIXTURE = PACKAGED_DATA / "milano-synthetic-day.tsv"


def test_the_packaged_fixture_is_synthetic_and_reproducible():
    assert "synthetic" in FIXTURE.name
    assert "SYNTHETIC" in (PACKAGED_DATA / "README.md").read_text()
    assert FIXTURE.read_text() == "".join(synthetic_lines())


def test_python_m_csvgen_synthetic_rewrites_it_byte_for_byte(tmp_path):
    out = tmp_path / "day.tsv"
    done = subprocess.run(
        [sys.executable, "-m", "csvgen.synthetic", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == FIXTURE.read_bytes()

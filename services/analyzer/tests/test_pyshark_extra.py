"""pyshark is an optional extra (analyzer[pyshark]): without it the fast backend and the
service work, and choosing the pyshark backend is one line naming the extra. Its absence is
simulated by blocking the module in sys.modules (the workspace's environment has it, for
the real pyshark tests in test_pcapfile.py and test_live_capture.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from analyzer.capture import CaptureError, open_file, open_live, require_backend
from analyzer.cli import app, serve

T0 = 1_795_000_000.0
EXTRA = ("analyzer[pyshark]", "uv sync --extra pyshark")


@pytest.fixture
def no_pyshark(monkeypatch):
    """pyshark as if not installed: `import pyshark` raises ModuleNotFoundError, and the
    backend module is imported afresh."""
    for name in list(sys.modules):
        if name == "pyshark" or name.startswith("pyshark."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyshark", None)
    monkeypatch.delitem(sys.modules, "analyzer.capture.pyshark_backend", raising=False)


@pytest.fixture
def capture_file(h, tmp_path):
    records = [(t, h.ethernet(h.ipv4_udp(s, d, p))) for t, s, d, p in h.call_flow("c", t0=T0)]
    return h.write_pcapng(tmp_path / "run.pcapng", records, tsresol=6)


def _names_the_extra(message: str) -> None:
    assert "\n" not in message
    for hint in EXTRA:
        assert hint in message, message


def test_opening_a_file_with_pyshark_missing_names_the_extra(no_pyshark, capture_file):
    with pytest.raises(CaptureError) as raised:
        open_file("pyshark", capture_file)
    _names_the_extra(str(raised.value))
    # the default backend needs no pyshark
    assert len(list(open_file("fast", capture_file).frames())) > 0


def test_a_live_capture_with_pyshark_missing_names_the_extra(no_pyshark, h):
    with pytest.raises(CaptureError) as raised:
        open_live("pyshark", "lo", h.PROXY, 1 << 20)
    _names_the_extra(str(raised.value))
    require_backend("fast")
    with pytest.raises(CaptureError):
        require_backend("pyshark")


def test_offline_cli_with_pyshark_missing_is_one_line(no_pyshark, capture_file, h):
    proxy = f"{h.PROXY[0]}:{h.PROXY[1]}"
    result = CliRunner().invoke(
        app, ["offline", str(capture_file), "--proxy", proxy, "--backend", "pyshark"]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    _names_the_extra(lines[0])


def test_the_service_refuses_to_start_with_pyshark_missing(no_pyshark, monkeypatch):
    monkeypatch.setenv("ANALYZER_BACKEND", "pyshark")
    with pytest.raises(SystemExit) as raised:
        serve()  # exits before uvicorn would start
    message = str(raised.value.code)
    assert message.startswith("analyzer: ")
    _names_the_extra(message)


def test_another_missing_module_is_not_blamed_on_the_extra(monkeypatch):
    """Only pyshark's absence is the extra's: another module the backend cannot import is
    reported as itself."""
    monkeypatch.delitem(sys.modules, "analyzer.capture.pyshark_backend", raising=False)
    monkeypatch.setitem(sys.modules, "analyzer.capture.afpacket", None)
    with pytest.raises(ModuleNotFoundError) as raised:
        require_backend("pyshark")
    assert raised.value.name == "analyzer.capture.afpacket"


def test_the_service_and_cli_import_without_pyshark():
    """Nothing imports pyshark unless its backend is chosen: a fresh interpreter where it
    cannot be imported loads the app and the CLI and reads a file with the fast backend."""
    code = (
        "import sys; sys.modules['pyshark'] = None\n"
        "import analyzer.main, analyzer.cli, analyzer.capture\n"
        "analyzer.main.create_app()\n"
        "assert 'analyzer.capture.pyshark_backend' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

"""`analyzer offline`: through typer's runner and as the installed console script."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app

T0 = 1_795_000_000.0


@pytest.fixture(scope="module")
def capture_file(h, tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = []
    for n in range(3):
        for t, src, dst, payload in h.call_flow(f"call-{n}", t0=T0 + n):
            records.append((t, h.ethernet(h.ipv4_udp(src, dst, payload))))
    # another proxy's traffic in the same file is not this proxy's
    other = ("127.0.9.2", 5060)
    for t, _src, _dst, payload in h.register_flow("elsewhere", t0=T0 + 10):
        records.append((t, h.ethernet(h.ipv4_udp(h.LB, other, payload))))
    records.append((T0 + 20, h.ethernet(h.ipv4_udp(h.LB, h.PROXY, b"SIP/2.0 200 OK\r\n"))))
    path = tmp_path_factory.mktemp("cli") / "run.pcapng"
    h.write_pcapng(path, records, tsresol=6)
    return path


EXPECTED = [
    ["time", "pair", "call_id", "response_time_ms"],
    *[
        row
        for n in range(3)
        for row in (
            [f"{T0 + n:.6f}", "invite_challenge", f"call-{n}", "1.000"],
            [f"{T0 + n + 0.003:.6f}", "invite_forward", f"call-{n}", "2.000"],
            [f"{T0 + n + 0.009:.6f}", "ok_forward", f"call-{n}", "1.000"],
        )
    ],
]


@pytest.mark.parametrize("backend", ["fast", "pyshark"])
def test_offline_prints_every_pair_as_csv(capture_file, backend):
    result = CliRunner().invoke(
        app, ["offline", str(capture_file), "--proxy", "127.0.9.1:5060", "--backend", backend]
    )
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == EXPECTED
    assert "invite_forward=3" in result.stderr
    assert "malformed=1" in result.stderr
    assert "not_proxy=4" in result.stderr


def test_debug_logs_both_packets_to_stderr(capture_file):
    result = CliRunner().invoke(
        app, ["offline", str(capture_file), "--proxy", "127.0.9.1:5060", "--debug"]
    )
    assert result.exit_code == 0
    assert "pair=ok_forward call_id=call-2 cseq=2 in=" in result.stderr
    assert "127.0.8.1:5060->127.0.9.1:5060 out=" in result.stderr


def test_the_console_script_is_installed(capture_file):
    script = shutil.which("analyzer")
    assert script is not None, "uv sync installs the analyzer console script"
    result = subprocess.run(
        [script, "offline", str(capture_file), "--proxy", "127.0.9.1:5060"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout))) == EXPECTED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--proxy", "proxy-0:5060"], "not an IPv4 address"),
        (["--proxy", "127.0.9.1"], "--proxy must be IPv4:port"),
        (["--proxy", "127.0.9.1:5060", "--backend", "scapy"], "scapy"),
    ],
)
def test_bad_options_are_named(capture_file, args, message):
    result = CliRunner().invoke(app, ["offline", str(capture_file), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_a_missing_or_foreign_file_is_an_error(tmp_path):
    result = CliRunner().invoke(app, ["offline", str(tmp_path / "x.pcap"), "--proxy", "1.2.3.4:5"])
    assert result.exit_code == 2
    assert "no such file" in result.output
    text = tmp_path / "notes.txt"
    text.write_text("not a capture at all")
    result = CliRunner().invoke(app, ["offline", str(text), "--proxy", "1.2.3.4:5"])
    assert result.exit_code == 2
    assert "not a pcap or pcapng file" in result.stderr


HOSTILE_CSEQ = "CSeq: \u00b2 INVITE"  # '²': str.isdigit() says yes, int() raises ValueError


def _with_hostile_datagram(h, path: Path) -> Path:
    records = [(T0 + t, h.ethernet(h.ipv4_udp(s, d, p))) for t, s, d, p in (
        (0.0, h.LB, h.PROXY, h.sip.request("INVITE", "bad", 1).replace(
            b"CSeq: 1 INVITE", HOSTILE_CSEQ.encode())),
    )]  # fmt: skip
    for t, src, dst, payload in h.call_flow("good", t0=T0 + 1):
        records.append((t, h.ethernet(h.ipv4_udp(src, dst, payload))))
    h.write_pcapng(path, records, tsresol=6)
    return path


@pytest.mark.parametrize("backend", ["fast", "pyshark"])
def test_a_hostile_datagram_is_counted_and_the_file_read_to_its_end(h, tmp_path, backend):
    path = _with_hostile_datagram(h, tmp_path / "hostile.pcapng")
    result = CliRunner().invoke(
        app, ["offline", str(path), "--proxy", "127.0.9.1:5060", "--backend", backend]
    )
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert [row[1] for row in csv.reader(io.StringIO(result.stdout))][1:] == [
        "invite_challenge",
        "invite_forward",
        "ok_forward",
    ]
    assert "malformed=1" in result.stderr


@pytest.mark.parametrize("backend", ["fast", "pyshark"])
def test_a_file_cut_short_prints_what_was_read_then_the_error(capture_file, tmp_path, backend):
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(capture_file.read_bytes()[:-7])  # the last block loses its end
    result = CliRunner().invoke(
        app, ["offline", str(cut), "--proxy", "127.0.9.1:5060", "--backend", backend]
    )
    assert result.exit_code == 2
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert list(csv.reader(io.StringIO(result.stdout))) == EXPECTED  # every pair was before it
    assert "# frames=" in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {cut}")
    if backend == "fast":
        assert "cut short at byte " in error
    else:
        assert "cut short" in error

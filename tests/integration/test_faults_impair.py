"""The netem fault's packet loss and delay, measured with real datagrams in a network namespace
of its own (the real kernel's NFQUEUE and iptables; the host's rules are not touched)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PROBE = r"""
import json, socket, statistics, subprocess, time
from testbed.experiment.faults.impair import Impairment

subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
def rules():
    return subprocess.run(["iptables-save", "-t", "mangle"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
def kept(lines):
    return [l for l in lines if not l.startswith("#")]
address = "127.0.9.1"
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind((address, 9999)); rx.settimeout(0.4)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); other.bind(("127.0.9.2", 9999))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.bind(("127.0.0.1", 0))
def measure(n):
    got, latencies = 0, []
    for i in range(n):
        start = time.monotonic()
        tx.sendto(b"x", (address, 9999))
        try:
            rx.recv(16)
        except socket.timeout:
            continue
        got += 1
        latencies.append((time.monotonic() - start) * 1000)
    return got, statistics.median(latencies) if latencies else None
def count(n):
    for i in range(n):
        tx.sendto(b"x", (address, 9999))
    got = 0
    try:
        while True:
            rx.recv(16)
            got += 1
    except socket.timeout:
        return got, None
def answer_other():
    # UDP to another address and TCP to the impaired one pass untouched
    tx.sendto(b"y", ("127.0.9.2", 9999)); other.settimeout(0.4); other.recv(16)
    server = socket.create_server((address, 9998))
    client = socket.create_connection((address, 9998), timeout=1)
    conn, _ = server.accept()
    client.sendall(b"z")
    data = conn.recv(1)
    for s in (server, client, conn):
        s.close()
    return data == b"z"
before = kept(rules())
out = {"baseline": measure(200)}
loss = Impairment(address, 30, 0, seed=7); loss.apply()
out["rules_during"] = [l for l in rules() if "ims-testbed-fault" in l]
out["loss"] = count(1000); out["loss_stats"] = vars(loss.stats); out["others_ok"] = answer_other()
loss.lift()
delay = Impairment(address, 0, 100, 20, seed=7); delay.apply()
out["delay"] = measure(40)
delay.lift()
out["after"] = measure(200)
out["restored"] = kept(rules()) == before
print(json.dumps(out))
"""


def test_loss_and_delay_hit_only_the_address_and_are_removed_exactly():
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", PROBE],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["baseline"][0] == 200
    assert len(out["rules_during"]) == 2  # from and to the address, UDP only
    assert all("-p udp" in rule and "--queue-bypass" in rule for rule in out["rules_during"])
    got, _ = out["loss"]
    # 30% of 1000: the binomial's standard deviation is 14.5, so 630-770 is a +-4.8 sd band
    assert 630 <= got <= 770, out["loss"]
    assert out["loss_stats"]["dropped"] == 1000 - got
    assert out["others_ok"]
    received, median_ms = out["delay"]
    assert received == 40
    assert 85 <= median_ms <= 150, out["delay"]
    assert out["after"][0] == 200
    assert out["after"][1] < 20
    assert out["restored"]


STALE = r"""
import json, os, subprocess
from testbed.local.packet_rules import COMMENT, owner_tag, remove_stale_rules

def add(address, owner):
    subprocess.run(["iptables", "-w", "-t", "mangle", "-I", "OUTPUT", "-p", "udp", "-d", address,
                    "-m", "comment", "--comment", f"{COMMENT} sip-proxy-0 {owner}",
                    "-j", "NFQUEUE", "--queue-num", "3400", "--queue-bypass"], check=True)
def rules():
    out = subprocess.run(["iptables-save", "-t", "mangle"], capture_output=True, text=True,
                         check=True).stdout
    return [l for l in out.splitlines() if l.startswith("-A ")]
# somebody else's rule, with a comment of its own: never touched
subprocess.run(["iptables", "-w", "-t", "mangle", "-A", "OUTPUT", "-p", "udp", "-d", "127.0.9.9",
                "-m", "comment", "--comment", "not ours", "-j", "ACCEPT"], check=True)
gone = subprocess.Popen(["sleep", "60"])
dead_tag = owner_tag(gone.pid)
gone.kill(); gone.wait()
add("127.0.9.1", dead_tag)               # its run was killed
add("127.0.9.2", owner_tag(os.getpid()))  # a live run holds it
add("127.0.9.3", f"{os.getpid()}:1")      # this PID, but another process's start: recycled
removed = remove_stale_rules()
print(json.dumps({"removed": removed, "left": rules()}))
"""


def test_rules_of_a_run_that_is_gone_are_deleted_and_a_live_runs_kept():
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", STALE],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["removed"]) == 2
    assert any("127.0.9.1" in rule for rule in out["removed"])
    assert any("127.0.9.3" in rule for rule in out["removed"])
    left = out["left"]
    assert len(left) == 2
    assert any("127.0.9.2" in rule and "ims-testbed-fault" in rule for rule in left)
    assert any('"not ours"' in rule for rule in left)

"""What `testbed cluster down` puts back, with real iptables in a network namespace of the
test's own: the KUBE-*/CNI-* chains added after the snapshot go with the rules that jump to
them (iptables-save quotes their comments), and nothing else is touched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import subprocess
    from testbed.cluster import hoststate

    def ipt(*args):
        subprocess.run(["iptables", *args], check=True)

    ipt("-N", "OLD-CHAIN")
    before = hoststate.snapshot("/ims-testbed-no-such-cgroup")
    ipt("-t", "nat", "-N", "CNI-HOSTPORT-TEST")
    ipt("-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment",
        "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-TEST")
    ipt("-N", "KUBE-TEST")
    ipt("-A", "KUBE-TEST", "-j", "RETURN")
    ipt("-A", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules",
        "-j", "KUBE-TEST")
    ipt("-N", "SOMEONE-ELSE")
    print(hoststate.restore_iptables(before, keep_shared=False))
    print(subprocess.run(["iptables-save"], capture_output=True, text=True).stdout)
    """
)


def test_down_removes_the_added_chains_and_their_commented_jumps_only() -> None:
    ns = f"hoststate{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    failures, saved = out.split("\n", 1)
    assert failures == "[]"
    assert "CNI-" not in saved
    assert "KUBE-" not in saved
    # chains that were there before, or are someone else's, stay
    assert ":OLD-CHAIN" in saved
    assert ":SOMEONE-ELSE" in saved

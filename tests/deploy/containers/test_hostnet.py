"""hostnet against real iptables and a real ip_forward, in a network namespace of the test's
own: the rules below are what podman's CNI plugins wrote on this machine for a compose project
(a container's chains, its port mapping, the shared skeleton, dnsname's DNS rule), and a
Kubernetes-like network ("cbr0", 10.244.0.0/24) that comes up beside it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from testbed.containers import hostnet

OURS = hostnet.Ownership(("tbx_default",), ("10.89.7.0/24",), ("cni-podman7",))
CID = "12aa07afa1939e30223b751019eee2a17a61658e3cf900ee0fbc24676bf3eabf"
TAG = f'-m comment --comment "name: \\"tbx_default\\" id: \\"{CID}\\""'
DNAT_TAG = f'-m comment --comment "dnat name: \\"tbx_default\\" id: \\"{CID}\\""'
MASQ = "CNI-400ba835522677bd95427509"  # one container's chains
DN = "CNI-DN-400ba835522677bd95427"
MARK = "-j MARK --set-xmark 0x2000/0x2000"

# a rule of the machine's own, there before the project
BEFORE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""

PROJECT = f"""*filter
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
-A INPUT -i cni-podman7 -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.89.7.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.89.7.2/32 -j ACCEPT
COMMIT
*nat
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:{MASQ} - [0:0]
:{DN} - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.89.7.2/32 {TAG} -j {MASQ}
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" {MARK}
-A {MASQ} -d 10.89.7.0/24 {TAG} -j ACCEPT
-A {MASQ} ! -d 224.0.0.0/4 {TAG} -j MASQUERADE
-A {DN} -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 39090 -j CNI-HOSTPORT-SETMARK
-A {DN} -d 127.0.0.1/32 -p tcp -m tcp --dport 39090 -j DNAT --to-destination 10.89.7.2:9090
-A CNI-HOSTPORT-DNAT -p tcp {DNAT_TAG} -m multiport --dports 39090 -j {DN}
COMMIT
"""

KID = "9a3b5cd533bad073a1e1148286cd66c7398f09f663b34221c19b5b7850a4825c"
KTAG = f'-m comment --comment "name: \\"cbr0\\" id: \\"{KID}\\""'
KCHAIN = "CNI-8e44976834b91d68249e46a6"
CLUSTER = f"""*filter
-A CNI-FORWARD -d 10.244.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.244.0.5/32 -j ACCEPT
COMMIT
*nat
:{KCHAIN} - [0:0]
-A POSTROUTING -s 10.244.0.5/32 {KTAG} -j {KCHAIN}
-A {KCHAIN} -d 10.244.0.0/24 {KTAG} -j ACCEPT
COMMIT
"""


@pytest.fixture
def netns() -> Iterator[tuple[str, ...]]:
    name = f"tbhostnet-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    prefix = ("ip", "netns", "exec", name)
    try:
        sh(prefix, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        sh(prefix, "iptables-restore", "--noflush", stdin=BEFORE)
        yield prefix
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def sh(prefix: tuple[str, ...], *argv: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [*prefix, *argv], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def rules(prefix: tuple[str, ...]) -> set[str]:
    _, by_table = hostnet.parse_iptables_save(sh(prefix, "iptables-save"))
    return {f"{table} {rule}" for table, lines in by_table.items() for rule in lines}


def up(prefix: tuple[str, ...], *rulesets: str) -> None:
    for ruleset in rulesets:
        sh(prefix, "iptables-restore", "--noflush", stdin=ruleset)
    sh(prefix, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def test_down_puts_back_exactly_what_was_there(netns: tuple[str, ...]) -> None:
    before = hostnet.snapshot(netns)
    up(netns, PROJECT)
    assert len(rules(netns)) > 15
    assert hostnet.snapshot(netns).ip_forward == "1"

    done = hostnet.restore(before, OURS, netns)

    after = hostnet.snapshot(netns)
    assert after.ip_forward == "0"
    assert done.ip_forward == "0"
    assert rules(netns) == {"filter -A INPUT -i lo -p tcp -m tcp --dport 22 -j ACCEPT"}
    assert not [c for chains in after.chains.values() for c in chains if c.startswith("CNI-")]
    assert "filter: CNI-FORWARD" in done.removed_chains
    assert "filter: -A INPUT -i cni-podman7 -p udp -m udp --dport 53 -j ACCEPT" in (
        done.removed_rules
    )
    assert not done.notes


def test_a_network_that_came_up_meanwhile_keeps_its_rules_and_forwarding(
    netns: tuple[str, ...],
) -> None:
    before = hostnet.snapshot(netns)
    up(netns, PROJECT, CLUSTER)
    cluster = {r for r in rules(netns) if "10.244." in r}
    assert len(cluster) == 4

    done = hostnet.restore(before, OURS, netns)

    now = rules(netns)
    assert cluster <= now
    assert not [r for r in now if "10.89.7." in r or "tbx_default" in r or "cni-podman7" in r]
    # the skeleton the other network's rules sit in stays, with the jumps into it
    assert (
        'filter -A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD' in now
    )
    chains = hostnet.snapshot(netns).chains
    assert {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"} <= set(chains["nat"])
    assert f"nat: {MASQ}" in done.removed_chains
    assert hostnet.snapshot(netns).ip_forward == "1"
    assert done.ip_forward is None
    assert any("ip_forward left at 1" in n for n in done.notes)


def test_nothing_is_touched_while_other_containers_run(netns: tuple[str, ...]) -> None:
    before = hostnet.snapshot(netns)
    up(netns, PROJECT)
    during = rules(netns)
    done = hostnet.restore(before, OURS, netns, others_running=True)
    assert rules(netns) == during
    assert hostnet.snapshot(netns).ip_forward == "1"
    assert done.notes
    assert not done.removed_rules
    assert not done.removed_chains


def test_plan_keeps_what_names_another_network() -> None:
    before = hostnet.Snapshot("0", {"filter": ["FORWARD"]}, {"filter": []})
    mixed = "-A CNI-FORWARD -s 10.89.7.2/32 -d 192.168.1.0/24 -j ACCEPT"
    now = hostnet.Snapshot(
        "1",
        {"filter": ["FORWARD", "CNI-FORWARD"]},
        {"filter": ["-A FORWARD -j CNI-FORWARD", mixed]},
    )
    assert hostnet.plan(before, now, OURS) == {}
    alone = hostnet.Snapshot(
        "1",
        {"filter": ["FORWARD", "CNI-FORWARD"]},
        {"filter": ["-A FORWARD -j CNI-FORWARD", "-A CNI-FORWARD -s 10.89.7.2/32 -j ACCEPT"]},
    )
    assert hostnet.plan(before, alone, OURS) == {
        "filter": hostnet.Removal(["-A FORWARD -j CNI-FORWARD"], ["CNI-FORWARD"])
    }

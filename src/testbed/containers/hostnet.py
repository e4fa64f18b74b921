"""What a podman compose project changes in the host's network, put back on `down`.

Root podman with CNI turns on IP forwarding and adds iptables chains: the per-container ones
(CNI-<hash>, CNI-DN-<hash>) go when the containers go, but the shared skeleton (CNI-FORWARD,
CNI-ADMIN, CNI-HOSTPORT-*, the jumps into them) and the dnsname plugin's DNS rule for the
network's bridge stay for good. `snapshot` records the state before `up`; `restore` removes, after
`down`, what was not there before and is provably the project's or the unused skeleton, and sets
ip_forward back.

The machine is shared (a Kubernetes cluster may come up beside, its CNI using the same chain
names), so a rule is only removed when it names nothing but the project's network: its name in
a CNI comment, its subnets, its bridge, loopback. A chain is removed only when all its rules go.
ip_forward is written back only when the whole ruleset is again exactly what it was: anything
else that appeared meanwhile may rely on forwarding.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# addresses any CNI rule may name without belonging to another network
NEUTRAL_NETS = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "224.0.0.0/4"))
_ADDRESS = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?")
_CNI_NAME = re.compile(r'name: \\"([^"\\]+)\\"')
_INTERFACE = re.compile(r"(?:^|\s)!?\s*-[io] (\S+)")
_TARGET = re.compile(r"\s-[jg] (\S+)")
BUILTIN_CHAINS = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
# a chain of one container (CNI-<hash>, CNI-DN-<hash>); the others are shared by every network
_PER_CONTAINER = re.compile(r"CNI-(DN-)?[0-9a-f]{20,}")


@dataclass(frozen=True)
class Ownership:
    """The project's networks as podman created them."""

    networks: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    bridges: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    ip_forward: str
    # table -> chain names and table -> rule lines ("-A CHAIN ...") of iptables-save
    chains: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        data = json.loads(path.read_text())
        return cls(data["ip_forward"], data["chains"], data["rules"])


@dataclass(frozen=True)
class Removal:
    rules: list[str]  # deleted one by one (those inside removed chains go with them)
    chains: list[str]


@dataclass
class Restored:
    removed_rules: list[str] = field(default_factory=list)  # "table: -A CHAIN ..."
    removed_chains: list[str] = field(default_factory=list)  # "table: CHAIN"
    ip_forward: str | None = None  # the value written back, None: left as it was
    notes: list[str] = field(default_factory=list)


def parse_iptables_save(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    chains: dict[str, list[str]] = {}
    rules: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            chains.setdefault(table, [])
            rules.setdefault(table, [])
        elif table and line.startswith(":"):
            chains[table].append(line[1:].split()[0])
        elif table and line.startswith("-A "):
            rules[table].append(line)
    return chains, rules


def _run(prefix: Sequence[str], *argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*prefix, *argv], input=stdin, capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise OSError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def snapshot(prefix: Sequence[str] = ()) -> Snapshot:
    """The current state; `prefix` runs the tools elsewhere (e.g. `ip netns exec NAME`)."""
    forward = _run(prefix, "sysctl", "-n", "net.ipv4.ip_forward").strip()
    chains, rules = parse_iptables_save(_run(prefix, "iptables-save"))
    return Snapshot(forward, chains, rules)


def _chain(rule: str) -> str:
    return rule.split()[1]


def _target(rule: str) -> str | None:
    match = _TARGET.search(rule)
    return match.group(1) if match else None


def _mentions(rule: str, owned: Ownership) -> tuple[bool, bool]:
    """(names something of the project, names something of another network)."""
    ours = foreign = False
    subnets = [ipaddress.ip_network(s, strict=False) for s in owned.subnets]
    for address, _prefix in _ADDRESS.findall(rule):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if any(ip in net for net in subnets):
            ours = True
        elif not any(ip in net for net in NEUTRAL_NETS):
            foreign = True
    for name in _CNI_NAME.findall(rule):
        ours, foreign = (True, foreign) if name in owned.networks else (ours, True)
    for interface in _INTERFACE.findall(rule):
        ours, foreign = (True, foreign) if interface in owned.bridges else (ours, True)
    return ours, foreign


def plan(before: Snapshot, now: Snapshot, owned: Ownership) -> dict[str, Removal]:
    """Per table, what to remove: a new CNI chain none of whose rules names another network and
    that no staying rule jumps into; a new rule elsewhere that names the project and nothing
    else, or jumps into a chain that goes. While another network's new rules are anywhere (a
    cluster came up meanwhile), the shared chains (CNI-FORWARD, CNI-HOSTPORT-*, ...) stay."""
    mentions: dict[str, tuple[bool, bool]] = {}  # new rules only: (ours, foreign)
    for table, rules in now.rules.items():
        old = set(before.rules.get(table, []))
        mentions.update({r: _mentions(r, owned) for r in rules if r not in old})
    shared_in_use = any(foreign for _, foreign in mentions.values())
    result: dict[str, Removal] = {}
    for table, rules in now.rules.items():
        old_chains = set(before.chains.get(table, []))
        removable = {
            c for c in now.chains.get(table, []) if c.startswith("CNI-") and c not in old_chains
        }
        changed = True
        while changed:
            changed = False
            for chain in sorted(removable):
                inside = [r for r in rules if _chain(r) == chain]
                outside = [r for r in rules if _chain(r) != chain and _target(r) == chain]
                keep = (
                    any(mentions[r][1] for r in inside)
                    or (shared_in_use and not _PER_CONTAINER.fullmatch(chain))
                    or not all(_goes(r, mentions, removable) for r in outside)
                )
                if keep:
                    removable.discard(chain)
                    changed = True
        deleted = [r for r in rules if _chain(r) not in removable and _goes(r, mentions, removable)]
        if deleted or removable:
            result[table] = Removal(deleted, sorted(removable))
    return result


def _goes(rule: str, mentions: dict[str, tuple[bool, bool]], removable: set[str]) -> bool:
    if rule not in mentions:
        return False  # it was there before
    ours, foreign = mentions[rule]
    return not foreign and (ours or _target(rule) in removable)


def restore(
    before: Snapshot, owned: Ownership, prefix: Sequence[str] = (), others_running: bool = False
) -> Restored:
    """Remove what `plan` finds and write ip_forward back (see the module's docstring)."""
    done = Restored()
    if others_running:
        done.notes.append("other podman containers are running: host network left as it is")
        return done
    for table, removal in plan(before, snapshot(prefix), owned).items():
        rules, chains = removal.rules, removal.chains
        # one iptables-restore per table: atomic, and the rule lines stay exactly as saved
        script = [f"*{table}"]
        script += ["-D" + rule[2:] for rule in rules]
        script += [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains] + ["COMMIT", ""]
        try:
            _run(prefix, "iptables-restore", "--noflush", stdin="\n".join(script))
        except OSError as exc:
            done.notes.append(f"{table}: {exc}")
            continue
        done.removed_rules += [f"{table}: {r}" for r in rules]
        done.removed_chains += [f"{table}: {c}" for c in chains]
    after = snapshot(prefix)
    if after.ip_forward != before.ip_forward:
        if _same_rules(before, after):
            _run(prefix, "sysctl", "-q", "-w", f"net.ipv4.ip_forward={before.ip_forward}")
            done.ip_forward = before.ip_forward
        else:
            done.notes.append(
                f"iptables changed meanwhile (another user?): ip_forward left at {after.ip_forward}"
            )
    return done


def _same_rules(a: Snapshot, b: Snapshot) -> bool:
    # a table iptables merely listed (nothing in it but its built-in chains) counts as absent
    def norm(s: Snapshot) -> dict[str, tuple[list[str], list[str]]]:
        tables = {
            t: (sorted(set(s.chains.get(t, [])) - BUILTIN_CHAINS), sorted(s.rules.get(t, [])))
            for t in set(s.chains) | set(s.rules)
        }
        return {t: v for t, v in tables.items() if v != ([], [])}

    return norm(a) == norm(b)

"""What the cluster changes on the host, recorded before and put back after.

The kubelet sets kernel sysctls (overcommit, panic on oops), the CNI bridge turns on IP
forwarding, kube-proxy and the CNI portmap plugin add iptables chains, containerd and the
kubelet mount overlays, network namespaces and volumes, the kubelet creates cgroups. `snapshot`
is taken before anything starts; `restore` removes what was added and writes back what changed,
and touches nothing else (a chain or rule that existed before stays, whoever made it).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
CHAIN_PREFIXES = ("KUBE-", "CNI-")
TABLES = ("filter", "nat", "mangle", "raw")
TOOLS = ("iptables", "ip6tables")


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = _sysctl_path(key).read_text().strip()
    return values


@dataclass
class Rules:
    """One table of iptables-save: chain names and rule lines (`-A CHAIN ...`)."""

    chains: set[str] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)


BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


def read_iptables(tool: str) -> dict[str, Rules]:
    if shutil.which(f"{tool}-save") is None:
        return {}
    out = subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=False).stdout
    return parse_iptables_save(out)


def parse_iptables_save(out: str) -> dict[str, Rules]:
    """The tables of an iptables-save listing. A table with no rule and only its built-in
    chains is left out: on a fresh host the first listing (or the cluster's first rule) loads
    the table's kernel module, which nothing unloads, and an empty table is the same host."""
    tables: dict[str, Rules] = {}
    current: Rules | None = None
    for line in out.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Rules())
        elif current is None:
            continue
        elif line.startswith(":"):
            current.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(line)
    return {
        name: table
        for name, table in tables.items()
        if table.rules or not table.chains <= BUILTIN_CHAINS
    }


@dataclass
class HostSnapshot:
    sysctls: dict[str, str]
    iptables: dict[str, dict[str, list[str]]]  # tool -> table -> chain names
    iptables_rules: dict[str, dict[str, list[str]]]  # tool -> table -> rule lines
    links: list[str]
    cgroup_root_existed: bool

    def to_json(self) -> dict[str, object]:
        return {
            "sysctls": self.sysctls,
            "iptables": self.iptables,
            "iptables_rules": self.iptables_rules,
            "links": self.links,
            "cgroup_root_existed": self.cgroup_root_existed,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> HostSnapshot:
        return cls(**data)  # type: ignore[arg-type]


def links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


def cgroup_dirs(cgroup_root: str) -> list[Path]:
    """The cgroup root's directory under every mounted hierarchy (v1 and v2)."""
    found = []
    base = Path("/sys/fs/cgroup")
    candidates = [base] + [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()]
    for hierarchy in candidates:
        directory = hierarchy / cgroup_root.strip("/")
        if directory.is_dir():
            found.append(directory)
    return found


def snapshot(cgroup_root: str) -> HostSnapshot:
    chains: dict[str, dict[str, list[str]]] = {}
    rules: dict[str, dict[str, list[str]]] = {}
    for tool in TOOLS:
        tables = read_iptables(tool)
        chains[tool] = {t: sorted(r.chains) for t, r in tables.items()}
        rules[tool] = {t: r.rules for t, r in tables.items()}
    return HostSnapshot(read_sysctls(), chains, rules, links(), bool(cgroup_dirs(cgroup_root)))


def _ours(name: str) -> bool:
    return name.startswith(CHAIN_PREFIXES)


def _jump_target(rule: str) -> str | None:
    parts = rule.split()
    for flag in ("-j", "-g"):
        if flag in parts and parts.index(flag) + 1 < len(parts):
            return parts[parts.index(flag) + 1]
    return None


def restore_iptables(before: HostSnapshot, keep_shared: bool) -> list[str]:
    """Delete the KUBE-*/CNI-* chains and the rules into them that were not there before.
    With keep_shared, CNI chains that other container networks use (podman's) stay.
    Returns the commands that failed."""
    failures = []
    for tool in TOOLS:
        for table, now in read_iptables(tool).items():
            old_chains = set(before.iptables.get(tool, {}).get(table, []))
            old_rules = set(before.iptables_rules.get(tool, {}).get(table, []))

            new_chains = {
                c
                for c in now.chains
                if c not in old_chains and _ours(c) and not (keep_shared and c.startswith("CNI-"))
            }
            for rule in now.rules:
                chain = rule.split()[1]
                if rule in old_rules or chain in new_chains:
                    continue  # flushed with its chain below
                target = _jump_target(rule)
                if target in new_chains:
                    # iptables-save quotes arguments with spaces (comments): split as a shell
                    args = [tool, "-t", table, "-D", *shlex.split(rule)[1:]]
                    if subprocess.run(args, capture_output=True, check=False).returncode:
                        failures.append(" ".join(args))
            for verb in ("-F", "-X"):
                for chain in sorted(new_chains):
                    args = [tool, "-t", table, verb, chain]
                    if subprocess.run(args, capture_output=True, check=False).returncode:
                        failures.append(" ".join(args))
    return failures


def restore_sysctls(before: HostSnapshot) -> dict[str, tuple[str, str]]:
    """Write back every recorded sysctl that changed; returns {key: (was, now)} of those."""
    changed = {}
    now = read_sysctls()
    for key, value in before.sysctls.items():
        if now.get(key) != value:
            with contextlib.suppress(OSError):
                _sysctl_path(key).write_text(value + "\n")
            changed[key] = (now.get(key, "?"), value)
    return changed


def mounts_under(*roots: Path) -> list[str]:
    """Mount points below the given directories, deepest first."""
    points = []
    prefixes = [str(r.resolve()) + "/" for r in roots]
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point.startswith(p) or point + "/" == p for p in prefixes):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(*roots: Path) -> list[str]:
    left = []
    for _ in range(3):  # a mount can hide another one at the same place
        for point in mounts_under(*roots):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        left = mounts_under(*roots)
        if not left:
            break
    return left


def make_cgroups(cgroup_root: str) -> None:
    """The kubelet's cgroup root under every hierarchy (it insists they exist); a new cpuset
    group starts empty, so it gets its parent's CPUs and memory nodes."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in [p for p in base.iterdir() if p.is_dir() and not p.is_symlink()]:
        if not (hierarchy / "cgroup.procs").exists():
            continue
        directory = hierarchy / cgroup_root.strip("/")
        directory.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (directory / name).exists() and not (directory / name).read_text().strip():
                (directory / name).write_text((hierarchy / name).read_text())


def remove_cgroups(cgroup_root: str) -> list[str]:
    """Kill what is left in the cgroup root (pods' processes after their runtime stopped)
    and remove its directories bottom-up; returns those that could not be removed."""
    left = []
    for top in cgroup_dirs(cgroup_root):
        directories = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for directory in [*directories, top]:
            procs = directory / "cgroup.procs"
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                directory.rmdir()
            except OSError:
                left.append(str(directory))
    return left


def delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)

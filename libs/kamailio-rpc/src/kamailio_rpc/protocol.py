"""JSON-RPC messages and the shapes of the Kamailio results the testbed reads. No I/O here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

_ids = itertools.count(1)


class RpcError(Exception):
    """Kamailio answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: Kamailio RPC error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class RpcTransportError(Exception):
    """The RPC endpoint could not be reached or did not answer JSON-RPC."""


def build_request(method: str, params: list[Any] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": next(_ids)}
    if params:
        request["params"] = params
    return request


def parse_response(method: str, body: Any) -> Any:
    if not isinstance(body, dict):
        raise RpcTransportError(f"{method}: expected a JSON-RPC object, got {type(body).__name__}")
    if "error" in body:
        error = body["error"] or {}
        raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")))
    if "result" not in body:
        raise RpcTransportError(f"{method}: JSON-RPC answer without result or error")
    return body["result"]


@dataclass(frozen=True)
class DispatcherTarget:
    setid: int
    uri: str
    flags: str  # e.g. "AX" active, "IX" inactive, "DX" disabled, "TX" trying

    @property
    def active(self) -> bool:
        return self.flags.startswith("A")


def parse_dispatcher_list(result: Any) -> list[DispatcherTarget]:
    """Flatten `dispatcher.list`: {"NRSETS": n, "RECORDS": [{"SET": {"ID", "TARGETS": [...]}}]}."""
    targets: list[DispatcherTarget] = []
    if not isinstance(result, dict):
        return targets
    for record in result.get("RECORDS") or []:
        ds_set = record.get("SET") or {}
        setid = int(ds_set.get("ID", 0))
        for target in ds_set.get("TARGETS") or []:
            dest = target.get("DEST") or {}
            targets.append(
                DispatcherTarget(
                    setid=setid, uri=str(dest.get("URI", "")), flags=str(dest.get("FLAGS", ""))
                )
            )
    return targets


def parse_ul_dump_aors(result: Any) -> list[str]:
    """AoRs of every usrloc domain from `ul.dump` (brief or full)."""
    aors: list[str] = []
    for domain in (result or {}).get("Domains") or []:
        for entry in (domain.get("Domain") or {}).get("AoRs") or []:
            aor = entry.get("AoR") if isinstance(entry, dict) else None
            if isinstance(aor, dict):  # full dump nests Info under AoR
                aor = aor.get("AoR")
            if aor:
                aors.append(str(aor))
    return aors


@dataclass(frozen=True)
class TmStats:
    current: int
    waiting: int
    total: int

    @property
    def open(self) -> int:
        """Transactions still being worked on (not just waiting to be freed)."""
        return max(self.current - self.waiting, 0)


def parse_tm_stats(result: Any) -> TmStats:
    return TmStats(
        current=int(result.get("current", 0)),
        waiting=int(result.get("waiting", 0)),
        total=int(result.get("total", 0)),
    )


def parse_statistics(result: Any) -> dict[str, int]:
    """`stats.get_statistics` answers ["group:name = value", ...]."""
    stats: dict[str, int] = {}
    for line in result or []:
        name, sep, value = str(line).partition(" = ")
        if sep:
            try:
                stats[name.strip()] = int(value.strip())
            except ValueError:
                continue
    return stats

"""Kamailio JSON-RPC over HTTP."""

from kamailio_rpc.client import AsyncKamailioRpc, KamailioRpc
from kamailio_rpc.protocol import (
    DispatcherTarget,
    RpcError,
    RpcTransportError,
    TmStats,
    build_request,
    parse_dispatcher_list,
    parse_response,
    parse_statistics,
    parse_tm_stats,
    parse_ul_dump_aors,
)

__all__ = [
    "AsyncKamailioRpc",
    "DispatcherTarget",
    "KamailioRpc",
    "RpcError",
    "RpcTransportError",
    "TmStats",
    "build_request",
    "parse_dispatcher_list",
    "parse_response",
    "parse_statistics",
    "parse_tm_stats",
    "parse_ul_dump_aors",
]

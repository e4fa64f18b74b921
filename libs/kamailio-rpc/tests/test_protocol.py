"""Parsers fed with answers captured from Kamailio 5.6.3 (integration tests use live ones)."""

import pytest

from kamailio_rpc import (
    RpcError,
    RpcTransportError,
    build_request,
    parse_dispatcher_list,
    parse_response,
    parse_statistics,
    parse_tm_stats,
    parse_ul_dump_aors,
)


def test_build_request_omits_empty_params_and_numbers_ids():
    first = build_request("core.uptime")
    second = build_request("ul.dump", ["brief"])
    assert first["jsonrpc"] == "2.0"
    assert "params" not in first
    assert second["params"] == ["brief"]
    assert second["id"] > first["id"]


def test_error_object_raises_with_code_and_message():
    with pytest.raises(RpcError) as info:
        parse_response(
            "dispatcher.reload",
            {"jsonrpc": "2.0", "error": {"code": 500, "message": "Ongoing reload"}, "id": 3},
        )
    assert info.value.code == 500
    assert info.value.message == "Ongoing reload"
    assert "dispatcher.reload" in str(info.value)


@pytest.mark.parametrize("body", [[], "x", {"jsonrpc": "2.0", "id": 1}])
def test_malformed_answers_are_transport_errors(body):
    with pytest.raises(RpcTransportError):
        parse_response("m", body)


def test_dispatcher_list():
    result = {
        "NRSETS": 1,
        "RECORDS": [
            {
                "SET": {
                    "ID": 1,
                    "TARGETS": [
                        {"DEST": {"URI": "sip:127.0.1.1:5060", "FLAGS": "AX", "PRIORITY": 0}},
                        {"DEST": {"URI": "sip:127.0.1.2:5060", "FLAGS": "IX", "PRIORITY": 0}},
                    ],
                }
            }
        ],
    }
    targets = parse_dispatcher_list(result)
    assert [(t.setid, t.uri, t.active) for t in targets] == [
        (1, "sip:127.0.1.1:5060", True),
        (1, "sip:127.0.1.2:5060", False),
    ]
    # an empty dispatcher table answers without RECORDS
    assert parse_dispatcher_list({"NRSETS": 0}) == []


def test_ul_dump_brief():
    result = {
        "Domains": [
            {
                "Domain": {
                    "Domain": "location",
                    "Size": 1024,
                    "AoRs": [{"AoR": "0100"}, {"AoR": "0101"}],
                    "Stats": {"Records": 2, "Max-Slots": 1},
                }
            }
        ]
    }
    assert parse_ul_dump_aors(result) == ["0100", "0101"]
    assert parse_ul_dump_aors({"Domains": []}) == []


def test_tm_stats_open_transactions_exclude_waiting():
    stats = parse_tm_stats({"current": 7, "waiting": 5, "total": 100, "created": 100})
    assert stats.open == 2
    assert parse_tm_stats({"current": 1, "waiting": 3, "total": 1}).open == 0


def test_statistics_lines():
    assert parse_statistics(["usrloc:registered_users = 12", "core:bad = x", "junk"]) == {
        "usrloc:registered_users": 12
    }

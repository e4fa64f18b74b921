from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from analyzer.config import Settings, parse_buckets
from analyzer.endpoints import parse_endpoint


def test_settings_come_from_analyzer_variables(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANALYZER_PROXY_ADDRESS", "127.0.1.2:5070")
    monkeypatch.setenv("ANALYZER_INTERFACE", "eth0")
    monkeypatch.setenv("ANALYZER_BACKEND", "pyshark")
    monkeypatch.setenv("ANALYZER_PAIR_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("ANALYZER_BUCKETS", "0.001, 0.01,1")
    monkeypatch.setenv("ANALYZER_DEBUG", "true")
    monkeypatch.setenv("ANALYZER_SAMPLES_LIMIT", "5")
    monkeypatch.setenv("ANALYZER_PCAP_FILE", "/tmp/x.pcap")
    s = Settings()
    assert s.proxy == ("127.0.1.2", 5070)
    assert (s.analyzer_interface, s.analyzer_backend, s.analyzer_pair_timeout_seconds) == (
        "eth0",
        "pyshark",
        10.0,
    )
    assert s.bucket_bounds == (0.001, 0.01, 1.0)
    assert s.analyzer_debug
    assert s.analyzer_samples_limit == 5
    assert s.analyzer_pcap_file == Path("/tmp/x.pcap")
    assert s.proxy_label == "127.0.1.2:5070"


def test_defaults_cover_half_a_millisecond_to_ten_seconds(monkeypatch: pytest.MonkeyPatch):
    for name in ("ANALYZER_PROXY_ADDRESS", "ANALYZER_BUCKETS", "ANALYZER_PCAP_FILE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.analyzer_http_port == 9101
    assert s.analyzer_backend == "fast"
    assert s.analyzer_pcap_file is None
    bounds = s.bucket_bounds
    assert (bounds[0], bounds[-1]) == (0.0005, 10.0)
    assert sum(0.5 <= b <= 1.5 for b in bounds) >= 8  # dense around the 1 s QoS target


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ANALYZER_PROXY_ADDRESS", "proxy-0:5060", "not an IPv4 address"),
        ("ANALYZER_PROXY_ADDRESS", "127.0.1.1", "IPv4:port"),
        ("ANALYZER_BACKEND", "scapy", "backend"),
        ("ANALYZER_BUCKETS", "1,0.5", "strictly increasing"),
        ("ANALYZER_BUCKETS", "0.1,fast", "comma-separated seconds"),
        ("ANALYZER_PAIR_TIMEOUT_SECONDS", "0", "pair_timeout_seconds"),
        ("ANALYZER_HTTP_PORT", "70000", "http_port"),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_endpoint_and_bucket_parsers():
    assert parse_endpoint(" 10.0.0.7:5060 ") == ("10.0.0.7", 5060)
    with pytest.raises(ValueError, match="--proxy must be IPv4:port"):
        parse_endpoint("10.0.0.7:0", "--proxy")
    with pytest.raises(ValueError, match="at least one"):
        parse_buckets(" , ")

"""One bad frame never stops the analysis: counted by reason, logged rate-limited, and the
frames after it are analysed as before."""

from __future__ import annotations

import logging

from analyzer.analysis import ANALYSIS_ERROR, Analyzer
from analyzer.pairing import MALFORMED

HOSTILE_CSEQ = "CSeq: \u00b2 INVITE".encode()  # '²': str.isdigit() says yes, int() does not


def test_the_issues_datagram_is_malformed_and_pairing_goes_on(h):
    analyzer = Analyzer(h.PROXY, 32.0)
    bad = h.sip.request("INVITE", "bad", 1).replace(b"CSeq: 1 INVITE", HOSTILE_CSEQ)
    assert analyzer.process(h.frame(1.0, h.LB, h.PROXY, bad)) is None
    pairs = analyzer.process_all(h.frame(*m) for m in h.call_flow("good", t0=2.0))
    assert [p.name for p in pairs] == ["invite_challenge", "invite_forward", "ok_forward"]
    stats, _, _ = analyzer.snapshot()
    assert stats.skipped == {MALFORMED: 1}


def test_malformed_messages_are_logged_rate_limited(h, caplog):
    analyzer = Analyzer(h.PROXY, 32.0)
    bad = h.sip.request("INVITE", "bad", 1).replace(b"CSeq: 1 INVITE", HOSTILE_CSEQ)
    with caplog.at_level(logging.WARNING, logger="analyzer.analysis"):
        for n in range(50):
            analyzer.process(h.frame(1.0 + n, h.LB, h.PROXY, bad))
    stats, _, _ = analyzer.snapshot()
    assert stats.skipped[MALFORMED] == 50
    lines = [r.getMessage() for r in caplog.records]
    assert 1 <= len(lines) <= 5  # a burst, then silence until the window ends
    assert "from 127.0.8.1:5060" in lines[0]
    assert "CSeq: '²' is not a number in ASCII digits" in lines[0]


def test_a_failure_inside_the_analysis_is_counted_and_the_next_frames_go_on(h, caplog):
    observed = []

    def observe(pair):
        if pair.call_id == "first":  # e.g. a bug downstream of the pairing
            raise RuntimeError("observer broke")
        observed.append(pair.name)

    analyzer = Analyzer(h.PROXY, 32.0, observe=observe)
    with caplog.at_level(logging.ERROR, logger="analyzer.analysis"):
        for message in [*h.call_flow("first", t0=1.0), *h.call_flow("second", t0=2.0)]:
            analyzer.process(h.frame(*message))
    assert observed == ["invite_challenge", "invite_forward", "ok_forward"]
    stats, _, _ = analyzer.snapshot()
    assert stats.skipped == {ANALYSIS_ERROR: 3}
    assert analyzer.frames == 34
    assert "analysis failed" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None  # the traceback is in the log, once

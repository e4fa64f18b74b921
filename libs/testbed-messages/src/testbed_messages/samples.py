"""The analyzer's response-time samples as CSV: the columns of its GET /samples answer and of
a run's response_times.csv (the testbed collects the one into the other)."""

from __future__ import annotations

# timestamp: Unix time the request reached the proxy; pair: the analyzer's pair name (REGISTER,
# INVITE ...); response_time_ms: from the request to its final response, in milliseconds
SAMPLES_CSV_FIELDS = ("timestamp", "proxy", "pair", "call_id", "cseq", "response_time_ms")

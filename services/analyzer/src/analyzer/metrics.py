"""Prometheus metrics in a registry passed in (tests use a fresh one).

The response-time histogram is observed as pairs complete. Counters are read from the tracker
and the capture at scrape time, so the per-packet path never touches prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from analyzer.analysis import Analyzer
from analyzer.capture import CaptureStats
from analyzer.pairing import PAIRS, Pair
from analyzer.samples import SampleStore


class ResponseTimes:
    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self.histogram = Histogram(
            "analyzer_sip_response_time_seconds",
            "Time from a message reaching the proxy to the proxy's answer or relay, by pair",
            ["pair"],
            buckets=buckets,
            registry=registry,
        )
        self._children = {name: self.histogram.labels(pair=name) for name in PAIRS}

    def observe(self, pair: Pair) -> None:
        self._children[pair.name].observe(pair.response_time)


class AnalyzerCollector(Collector):
    def __init__(
        self,
        analyzer: Analyzer,
        samples: SampleStore,
        capture_stats: Callable[[], CaptureStats | None],
    ) -> None:
        self.analyzer = analyzer
        self.samples = samples
        self.capture_stats = capture_stats

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())  # collected lazily; nothing to check at registration

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats, open_entries, remembered = self.analyzer.snapshot()
        messages = CounterMetricFamily(
            "analyzer_sip_messages",
            "SIP messages at the proxy (status is empty for requests)",
            labels=["direction", "method", "status"],
        )
        for (direction, method, status), count in sorted(stats.messages.items()):
            messages.add_metric([direction, method, status], count)
        yield messages
        retransmissions = CounterMetricFamily(
            "analyzer_sip_retransmissions",
            "Messages recognised as retransmissions (not paired again), by pair",
            labels=["pair"],
        )
        for name in PAIRS:
            retransmissions.add_metric([name], stats.retransmissions.get(name, 0))
        yield retransmissions
        unpaired = CounterMetricFamily(
            "analyzer_sip_unpaired",
            "Entries that ended without a pair: expired, other_answer or unmatched",
            labels=["pair", "reason"],
        )
        for (name, reason), count in sorted(stats.unpaired.items()):
            unpaired.add_metric([name, reason], count)
        yield unpaired
        skipped = CounterMetricFamily(
            "analyzer_packets_skipped",
            "Captured packets not analysed, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(stats.skipped.items()):
            skipped.add_metric([reason], count)
        yield skipped
        yield GaugeMetricFamily(
            "analyzer_open_entries", "Messages waiting for their pair", value=open_entries
        )
        yield GaugeMetricFamily(
            "analyzer_remembered_entries",
            "Closed pairs remembered to recognise retransmissions",
            value=remembered,
        )
        yield GaugeMetricFamily(
            "analyzer_samples", "Samples held for /samples", value=len(self.samples)
        )
        yield CounterMetricFamily(
            "analyzer_samples_dropped",
            "Oldest samples dropped at ANALYZER_SAMPLES_LIMIT",
            value=self.samples.dropped,
        )
        capture = self.capture_stats()
        if capture is None:
            return
        yield CounterMetricFamily(
            "analyzer_capture_delivered", "Frames the backend delivered", value=capture.delivered
        )
        if capture.kernel_seen is not None:
            yield CounterMetricFamily(
                "analyzer_capture_kernel_seen",
                "Packets the kernel matched with the capture filter",
                value=capture.kernel_seen,
            )
        if capture.dropped is not None:
            yield CounterMetricFamily(
                "analyzer_capture_dropped",
                "Packets the kernel dropped because the analyzer fell behind",
                value=capture.dropped,
            )
        if capture.queued is not None:
            yield GaugeMetricFamily(
                "analyzer_capture_queued",
                "Packets matched but not yet delivered (socket buffer or pipe)",
                value=capture.queued,
            )
        if capture.lag_seconds is not None:
            yield GaugeMetricFamily(
                "analyzer_capture_lag_seconds",
                "Delay between a packet's capture and its analysis, at the last packet",
                value=capture.lag_seconds,
            )

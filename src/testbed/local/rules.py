"""The chart's metric queries, for local mode: the recording rules (files/recording-rules.yaml),
prometheus-adapter's rules and KEDA's trigger queries (values.yaml), rendered with the
experiment's rate window and namespace as `helm template` renders them, and the adapter's
`<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>` expanded as prometheus-adapter expands
them. One source of query text for a cluster and the local testbed: a local policy sees what
the adapter or KEDA would show it. Sans-I/O apart from reading the chart's two files.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# the namespace label local mode gives every target (the chart's series carry the release's)
LOCAL_NAMESPACE = "local"
RULES_FILE = Path("files/recording-rules.yaml")
VALUES_FILE = Path("values.yaml")

# recording rules the runner reads (their expressions, evaluated at each sample)
P99_RULE = "ims_testbed:analyzer_sip_response_time_seconds:p99"
P99_BY_POD_RULE = "ims_testbed:analyzer_sip_response_time_seconds:p99_by_pod"
# prometheus-adapter's metric names (values.yaml prometheusAdapter.rules ... name.as)
P99_POD_METRIC = "sip_response_time_p99_seconds"
CPU_POD_METRIC = "container_cpu_usage_per_second"
INVITE_RATE_METRIC = "sip_invites_per_second"

_GO_TEMPLATE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_SERIES_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*")
_QUANTILE = re.compile(r"^histogram_quantile\(0\.99,")


class RuleError(ValueError):
    """The chart's rule text cannot be used by local mode; the message names file and field."""


def prometheus_duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as `30s`, anything finer in milliseconds."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"a rate window must be a positive duration, got {seconds}")
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render(text: str, window: str, namespace: str, where: str) -> str:
    """`text` with the two template actions the chart's queries use replaced, as helm's tpl
    replaces them; any other action is an error (local mode is no template engine)."""
    known = {".Values.metrics.window": window, ".Release.Namespace": namespace}

    def replace(match: re.Match[str]) -> str:
        value = known.get(match.group(1))
        if value is None:
            raise RuleError(f"{where}: local mode cannot render {match.group(0)!r}")
        return value

    return _GO_TEMPLATE.sub(replace, text)


def with_quantile(expr: str, q: float) -> str:
    """A p99 expression of the chart for another quantile (qos.percentile)."""
    if not _QUANTILE.match(expr):
        raise RuleError(f"not a histogram_quantile(0.99, ...) expression: {expr}")
    return _QUANTILE.sub(f"histogram_quantile({q:g},", expr, count=1)


@dataclass(frozen=True)
class AdapterRule:
    """One rule of prometheus-adapter's config (rules or externalRules)."""

    series_query: str
    metrics_query: str
    name: str  # the metric name it serves (name.as)

    @property
    def series(self) -> str:
        match = _SERIES_NAME.match(self.series_query)
        if match is None:
            raise RuleError(f"adapter rule {self.name}: no series name in {self.series_query!r}")
        return match.group(0)

    def expand(self, matchers: list[str], group_by: list[str]) -> str:
        """metricsQuery as the adapter fills it in: the series, the label matchers joined
        with commas, the group-by labels joined with commas."""
        return (
            self.metrics_query.replace("<<.Series>>", self.series)
            .replace("<<.LabelMatchers>>", ",".join(matchers))
            .replace("<<.GroupBy>>", ",".join(group_by))
        )


def _label(name: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


@dataclass(frozen=True)
class ChartQueries:
    """The chart's queries rendered for one namespace and window."""

    namespace: str
    window: str
    rules_text: str  # the recording-rule file, rendered (Prometheus's rule_files)
    recorded: dict[str, str]  # record name -> expression
    custom: dict[str, AdapterRule]  # adapter metric name -> rule (pods, objects)
    external: dict[str, AdapterRule]
    keda: list[str]  # the triggers' queries, in values.yaml's order

    def pods_query(self, metric: str, pods: list[str]) -> str:
        """The adapter's query for a Pods metric of `pods` (as the HPA asks for them)."""
        rule = self._rule(self.custom, metric, "rules")
        # as the adapter's Build: one name is matched with =, several with =~ (pod names are
        # DNS labels: nothing in them to escape in a regular expression)
        names = sorted(pods)
        pod = _label("pod", names[0]) if len(names) == 1 else f'pod=~"{"|".join(names)}"'
        return rule.expand([_label("namespace", self.namespace), pod], ["pod"])

    def namespace_query(self, metric: str) -> str:
        """A Pods metric for every pod of the namespace, by pod: what the chart's policy
        controller asks (templates/_queries.tpl), where the adapter would list the HPA's pods."""
        rule = self._rule(self.custom, metric, "rules")
        return rule.expand([_label("namespace", self.namespace)], ["pod"])

    def external_query(self, metric: str, selector: dict[str, str]) -> str:
        """The adapter's query for an External metric with the HPA's matchLabels."""
        rule = self._rule(self.external, metric, "externalRules")
        matchers = [_label(k, v) for k, v in sorted(selector.items())]
        # the adapter's QueryForExternalSeries groups by nothing: `by ()`
        return rule.expand([*matchers, _label("namespace", self.namespace)], [])

    def keda_query(self, series: str) -> str:
        """KEDA's trigger query that reads `series`."""
        found = [q for q in self.keda if series in q]
        if len(found) != 1:
            raise RuleError(f"values.yaml keda.triggers: {len(found)} queries read {series}")
        return found[0]

    @staticmethod
    def _rule(rules: dict[str, AdapterRule], metric: str, field: str) -> AdapterRule:
        if metric not in rules:
            raise RuleError(f"values.yaml prometheusAdapter.rules: no {field} serve {metric}")
        return rules[metric]


def _adapter_rules(entries: Any, field: str, window: str, namespace: str) -> dict[str, AdapterRule]:
    where = f"values.yaml prometheusAdapter.rules.{field}"
    if not isinstance(entries, list):
        raise RuleError(f"{where}: expected a list")
    rules: dict[str, AdapterRule] = {}
    for i, entry in enumerate(entries):
        try:
            name = str(entry["name"]["as"])
            rules[name] = AdapterRule(
                series_query=render(entry["seriesQuery"], window, namespace, f"{where}[{i}]"),
                metrics_query=render(entry["metricsQuery"], window, namespace, f"{where}[{i}]"),
                name=name,
            )
        except (KeyError, TypeError) as exc:
            raise RuleError(f"{where}[{i}]: missing {exc}") from None
    return rules


def chart_queries(chart: Path, window_s: float, namespace: str = LOCAL_NAMESPACE) -> ChartQueries:
    """Read and render the chart's queries with a rate window of `window_s` seconds."""
    window = prometheus_duration(window_s)
    rules_path, values_path = chart / RULES_FILE, chart / VALUES_FILE
    try:
        rules_text = render(rules_path.read_text(), window, namespace, str(rules_path))
        values = yaml.safe_load(values_path.read_text())
    except OSError as exc:
        raise RuleError(f"the chart's metric queries: {exc}") from None
    rules = yaml.safe_load(rules_text)
    try:
        recorded = {
            str(rule["record"]): str(rule["expr"])
            for group in rules["groups"]
            for rule in group["rules"]
            if "record" in rule
        }
        adapter = values["prometheusAdapter"]["rules"]
        triggers = values["keda"]["triggers"]
    except (KeyError, TypeError) as exc:
        raise RuleError(f"{rules_path} or {values_path}: missing {exc}") from None
    return ChartQueries(
        namespace=namespace,
        window=window,
        rules_text=rules_text,
        recorded=recorded,
        custom=_adapter_rules(adapter.get("custom"), "custom", window, namespace),
        external=_adapter_rules(adapter.get("external"), "external", window, namespace),
        keda=[
            render(str(t["metadata"]["query"]), window, namespace, "values.yaml keda.triggers")
            for t in triggers
        ],
    )

"""The chart's p99 rules checked by Debian's promtool (`promtool test rules`: Prometheus's own
rule engine over series given as text, no waiting): after a quiet spell, a burst of fast
REGISTERs on a histogram whose upper buckets hold the start's slow ones. rate() extrapolates
each bucket differently there and puts the p99 where no sample was; the exact increase the
rules use does not. A proxy born inside the window and one removed inside it both count."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from support import ROOT

from testbed.local.rules import P99_BY_POD_RULE, P99_RULE, chart_queries

CHART = ROOT / "helm" / "ims-testbed"
NAME = "analyzer_sip_response_time_seconds_bucket"


def series(pod: str, pair: str, values: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"series": f'{NAME}{{namespace="lab",pod="{pod}",pair="{pair}",le="{le}"}}', "values": v}
        for le, v in values.items()
    ]


# samples every 5 s from t=0. The start's 100 registrations took 4-7 s (le 10 and +Inf only);
# 4 calls a period of 5 s, all under 0.5 s, from t=0; at 65 and 70 s 100 fast REGISTERs
SLOW_START = "0x12 50 100x10"
SLOW_START_HIGH = "100x12 150 200x10"
CALLS = "0+4x24"
INPUT = [
    *series(
        "sip-proxy-0",
        "register_ok",
        {
            "0.5": SLOW_START,
            "2.5": SLOW_START,
            "10": SLOW_START_HIGH,
            "+Inf": SLOW_START_HIGH,
        },
    ),
    *series("sip-proxy-0", "invite_forward", dict.fromkeys(("0.5", "2.5", "10", "+Inf"), CALLS)),
    # a proxy that joined at 70 s and was removed after 95 s
    *series(
        "sip-proxy-1",
        "invite_forward",
        dict.fromkeys(("0.5", "2.5", "10", "+Inf"), "_x14 0 2 4 6 8 10"),
    ),
]


def promtool_test(tmp_path: Path, rules: str, tests: list[dict[str, object]]) -> tuple[int, str]:
    (tmp_path / "rules.yaml").write_text(rules)
    spec = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "2s",  # off the scrapes, as in a real run
        "tests": [{"interval": "5s", "input_series": INPUT, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (scripts/setup.sh)"
    done = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def check(expr: str, at: str, labels: list[str]) -> dict[str, object]:
    """`expr` is 1 at `at` for each of these label sets (a comparison with bool)."""
    return {
        "expr": expr,
        "eval_time": at,
        "exp_samples": [{"labels": x, "value": 1} for x in labels],
    }


def test_the_p99_rules_count_each_bucket_s_exact_increase(tmp_path: Path) -> None:
    queries = chart_queries(CHART, 30, "lab")
    # at 82 s the window (52-82 s, scrapes at 55-80) holds the burst's 100 REGISTERs, the
    # calls of proxy 0 and the first of proxy 1: all under 0.5 s
    tests = [
        check(f"{P99_RULE} <= bool 0.5", "82s", ["{}"]),
        check(
            f"{P99_BY_POD_RULE} <= bool 0.5",
            "82s",
            ['{pod="sip-proxy-0"}', '{pod="sip-proxy-1"}'],
        ),
        # proxy 1 was last scraped at 95 s: at 112 s its last calls still count
        check(
            f'{P99_BY_POD_RULE}{{pod="sip-proxy-1"}} <= bool 0.5', "112s", ['{pod="sip-proxy-1"}']
        ),
    ]
    code, out = promtool_test(tmp_path, queries.rules_text, tests)
    assert code == 0, out


def test_rate_would_put_the_p99_where_no_sample_was(tmp_path: Path) -> None:
    # the same check on the expression the rules used before: the p99 lands in the (2.5, 10]
    # bucket, which only the start's registrations reached
    queries = chart_queries(CHART, 30, "lab")
    old = f'histogram_quantile(0.99, sum by (le) (rate({NAME}{{namespace="lab"}}[30s])))'
    rules = queries.rules_text.replace(queries.recorded[P99_RULE], old)
    assert old in rules
    code, out = promtool_test(tmp_path, rules, [check(f"{P99_RULE} > bool 2.5", "82s", ["{}"])])
    assert code == 0, out
    code, out = promtool_test(
        tmp_path, queries.rules_text, [check(f"{P99_RULE} > bool 2.5", "82s", ["{}"])]
    )
    assert code != 0, out

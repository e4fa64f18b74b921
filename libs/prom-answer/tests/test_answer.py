"""Answers as Prometheus writes them (JSON text), read into labelled values."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prom_answer import PrometheusError, Series, by_label, parse_answer, single


def _read(status: int, text: str) -> list[Series]:
    return parse_answer(status, json.loads(text))


def test_a_vector_by_pod_with_a_nan_and_an_infinity():
    text = """{"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"pod":"sip-proxy-0"},"value":[1764835200.5,"0.0125"]},
      {"metric":{"pod":"sip-proxy-1"},"value":[1764835200.5,"NaN"]},
      {"metric":{"pod":"sip-proxy-2"},"value":[1764835200.5,"+Inf"]},
      {"metric":{},"value":[1764835200.5,"7"]}]}}"""
    series = _read(200, text)
    assert series[0] == Series({"pod": "sip-proxy-0"}, 0.0125)
    assert by_label(series, "pod") == {
        "sip-proxy-0": 0.0125,
        "sip-proxy-1": None,
        "sip-proxy-2": None,
    }


def test_single_values():
    empty = '{"status":"success","data":{"resultType":"vector","result":[]}}'
    scalar = '{"status":"success","data":{"resultType":"scalar","result":[1764835200,"3.5"]}}'
    assert single(_read(200, empty)) is None
    assert single(_read(200, scalar)) == 3.5
    with pytest.raises(PrometheusError, match="expected one value, got 2 series"):
        single([Series({"pod": "a"}, 1.0), Series({"pod": "b"}, 2.0)])


def test_an_error_answer_names_prometheus_reason():
    text = '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\""}'
    with pytest.raises(PrometheusError, match=r'HTTP 400: bad_data: invalid parameter "query"'):
        _read(400, text)
    # a success body behind an error status is still an error
    with pytest.raises(PrometheusError, match="HTTP 503: error: no reason given"):
        _read(503, '{"status":"success","data":{"resultType":"vector","result":[]}}')


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[]", "not a JSON object"),
        ('{"status":"success"}', "has no data"),
        ('{"status":"success","data":{"resultType":"matrix","result":[]}}', "got 'matrix'"),
        (
            '{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
            "not a vector element",
        ),
        (
            '{"status":"success","data":{"resultType":"vector","result":[{"metric":[],"value":[1,"2"]}]}}',
            "not a vector element",
        ),
        (
            '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}',
            "not a sample value: 'abc'",
        ),
    ],
)
def test_answers_that_are_not_vectors_are_named(text, reason):
    with pytest.raises(PrometheusError, match=reason):
        _read(200, text)


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(
    body=st.fixed_dictionaries(
        {"status": st.just("success")},
        optional={
            "data": st.fixed_dictionaries(
                {"resultType": st.sampled_from(["vector", "scalar"]), "result": _json}
            )
        },
    ),
)
def test_any_body_gives_series_or_a_prometheus_error(body):
    try:
        series = parse_answer(200, body)
    except PrometheusError:
        return
    assert all(isinstance(s, Series) for s in series)

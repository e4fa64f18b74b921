"""Prometheus' instant-query answers read into labelled values (see answer.py)."""

from prom_answer.answer import PrometheusError, Series, by_label, parse_answer, single

__all__ = ["PrometheusError", "Series", "by_label", "parse_answer", "single"]

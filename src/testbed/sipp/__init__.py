"""SIPp as the independent SIP peer of tests, benchmarks and the smoke demo."""

from testbed.sipp.runner import SippError, SippResult, SippRunner, percentile

__all__ = ["SippError", "SippResult", "SippRunner", "percentile"]

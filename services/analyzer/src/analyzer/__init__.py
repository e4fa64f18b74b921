"""analyzer: SIP response times measured at a proxy from its captured traffic."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("analyzer")
except PackageNotFoundError:
    __version__ = "0.0.0"

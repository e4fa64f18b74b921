"""sip-controller: the proxies' lifecycle hooks, the DB owner and the load balancers' conductor."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sip-controller")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

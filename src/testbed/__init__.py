"""ims-testbed: local mode (real Kamailio processes) for scaling experiments on SIP proxies."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ims-testbed")
except PackageNotFoundError:
    __version__ = "0.0.0"

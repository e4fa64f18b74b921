"""scenario-controller: the hub the sip-client pods connect to, and the scenario replayer."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scenario-controller")
except PackageNotFoundError:
    __version__ = "0.0.0"

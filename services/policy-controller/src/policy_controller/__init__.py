"""policy-controller: the testbed's predictive scaling policy as an in-cluster controller."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("policy-controller")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

"""csvgen: scenario CSV generation (rate shapes, arrival processes), validation and plots."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csvgen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

"""sip-client: one process is one pod of softphones PP00..PPNN on one UDP socket."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sip-client")
except PackageNotFoundError:
    __version__ = "0.0.0"

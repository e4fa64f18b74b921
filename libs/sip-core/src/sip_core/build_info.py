"""Which build of sip-core is running: the Python sources or the mypyc-compiled wheel.

The sip-client image installs the compiled wheel (libs/sip-core/setup.py, SIP_CORE_MYPYC=1);
`uv sync` installs the sources. Profiles and benchmark figures depend on which one ran.
"""

from __future__ import annotations

import importlib.machinery

from sip_core import message


def compiled() -> bool:
    """Whether sip-core's modules are C extension modules (mypyc), not .py files."""
    return message.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))

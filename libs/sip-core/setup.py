"""sip-core's wheel: pure Python, or with SIP_CORE_MYPYC=1 every module compiled by mypyc.

The metadata lives in pyproject.toml; this file only adds the extension modules. Compiling
needs a C compiler and Python's headers; the pure build needs neither.
"""

import os
import sys
from pathlib import Path

from setuptools import setup

mode = os.environ.get("SIP_CORE_MYPYC", "")
if mode not in ("", "0", "1"):
    sys.exit(f"sip-core: SIP_CORE_MYPYC must be 1 (compile) or 0/unset (pure), not {mode!r}")
ext_modules = []
# never for an editable install: the .so files would land in src/ and shadow every later edit
if mode == "1" and "editable_wheel" not in sys.argv:
    from mypyc.build import mypycify

    # strict, as the workspace checks it, with sip-core's own (empty) mypy configuration: the
    # workspace root's names a pydantic plugin this build environment does not have
    sources = sorted(str(p) for p in Path("src/sip_core").glob("*.py"))
    ext_modules = mypycify(
        ["--config-file", "pyproject.toml", "--strict", *sources], group_name="sip_core"
    )

setup(ext_modules=ext_modules)

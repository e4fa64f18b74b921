"""Ask the kernel to wake the dispatching thread promptly on a busy CPU.

The runner sleeps until each invite is due, about a millisecond at 1000 invites/s; when other
processes share its CPU, the default CFS/EEVDF slice (a few ms) lets one of them finish its
slice before the woken controller runs, and the invite goes out that much late. Since Linux
6.12 a SCHED_OTHER thread may ask for a shorter slice (sched_setattr's sched_runtime, 0.1-100 ms,
no privilege needed): its virtual deadline on wake-up is then earlier, so it preempts the
running hog instead of queueing behind it. The thread's CPU share is unchanged. Older kernels
ignore the field; other systems lack the call: then nothing changes but a log line.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)

# the shortest slice the kernel accepts; the controller needs well under 1 ms per wake-up
DISPATCH_SLICE_NS = 100_000
# sched_setattr's number, per architecture (it is not in Python's os module)
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}


class _SchedAttr(ctypes.Structure):
    """struct sched_attr (include/uapi/linux/sched/types.h), the fields up to util_max."""

    _fields_ = (
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    )


def request_short_slice(slice_ns: int = DISPATCH_SLICE_NS) -> bool:
    """Ask for `slice_ns` slices for the calling thread (SCHED_OTHER, its nice kept); True if
    the kernel accepted the call (a kernel before 6.12 accepts it and ignores the slice)."""
    number = _SYS_SCHED_SETATTR.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        log.info("short scheduler slices: not available on %s", platform.machine())
        return False
    attr = _SchedAttr(
        size=ctypes.sizeof(_SchedAttr),
        sched_policy=os.SCHED_OTHER,
        sched_nice=os.getpriority(os.PRIO_PROCESS, 0),
        sched_runtime=slice_ns,
    )
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, 0, ctypes.byref(attr), 0) != 0:
        error = ctypes.get_errno()
        log.info("short scheduler slices: sched_setattr failed: %s", os.strerror(error))
        return False
    log.debug("scheduler slice of the dispatching thread: %d ns", slice_ns)
    return True

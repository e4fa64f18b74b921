"""Fault injection for experiments (docs/faults.md): the `faults:` spec, its schedule, the
injector on the local testbed and the per-fault analysis of a results folder."""

from testbed.experiment.faults.analysis import FaultImpact, FaultWindow, analyze, fault_windows
from testbed.experiment.faults.schedule import FaultSchedule, Step
from testbed.experiment.faults.spec import FaultSpec, check_against

__all__ = [
    "FaultImpact",
    "FaultSchedule",
    "FaultSpec",
    "FaultWindow",
    "Step",
    "analyze",
    "check_against",
    "fault_windows",
]

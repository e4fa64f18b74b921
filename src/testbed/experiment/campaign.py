"""A campaign (`testbed campaign FILE`): several candidate experiments, each repeated N times,
played interleaved (repetition 1 of every candidate, then repetition 2, ...) so that a drift of
the machine's speed over the hours spreads over all candidates instead of favouring the one that
ran first. Repetition i of every candidate uses the same seeds (the experiment's + i - 1, as
`testbed run --repeat`), so the candidates meet the same arrivals.

    results/<campaign>-<time>/
        campaign.yaml     the campaign file as given
        campaign.json     the candidates, the order the runs were played in, their statuses
        <candidate>/      a group folder per candidate, as `testbed run --repeat` writes it
        compare/          `testbed compare` over the groups, in the campaign file's order

A campaign always ends with every group's summary written: a failed run is recorded and the
next runs; a signal, or a run that would start after --latest-start, ends it, the runs left
marked `not run`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from testbed.experiment.group import (
    Repetition,
    RunOne,
    arrivals_note,
    reseed,
    run_repetition,
    scenario_seed,
    write_group_file,
    write_group_summary,
)
from testbed.experiment.lifecycle import Interrupts
from testbed.experiment.spec import Experiment, ExperimentError, load

CAMPAIGN_FILE = "campaign.json"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # a folder name


class CampaignError(ValueError):
    """The campaign file cannot be used; the message names the file and field or candidate."""


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="its group folder and its label in the comparison")
    experiment: Path = Field(description="experiment YAML, relative to the campaign file")
    set: dict[str, Any] = Field(
        default_factory=dict, description="overrides of this candidate (KEY.PATH: value)"
    )


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = ""
    repeat: int = Field(3, ge=1, description="repetitions of every candidate")
    set: dict[str, Any] = Field(
        default_factory=dict, description="overrides of every candidate, before its own"
    )
    candidates: list[Candidate] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique(self) -> CampaignSpec:
        names = [c.name for c in self.candidates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"candidate names must differ: {', '.join(twice)} given twice")
        return self


@dataclass
class Planned:
    """A candidate ready to run: its experiment loaded with every override applied."""

    candidate: Candidate
    file: Path
    experiment: Experiment
    overrides: list[str]  # as applied: the campaign's, the candidate's, --set, its name
    repetitions: list[Repetition] = field(default_factory=list)


def as_overrides(values: dict[str, Any]) -> list[str]:
    """`KEY=VALUE` strings for spec.load (the value as JSON, which YAML reads back unchanged)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def load_campaign(path: Path, extra: list[str] | None = None) -> tuple[CampaignSpec, list[Planned]]:
    """The campaign and its candidates' experiments, every one loaded (so a bad candidate stops
    the campaign before anything runs). `extra` (`--set`) overrides come last, for every
    candidate. The experiment's name becomes the candidate's."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: not valid YAML: {exc}") from None
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise CampaignError(f"{path}: {problems}") from None
    planned = []
    for candidate in spec.candidates:
        file = candidate.experiment
        if not file.is_absolute():
            file = (path.parent / file).resolve()
        overrides = [
            *as_overrides(spec.set),
            *as_overrides(candidate.set),
            *(extra or []),
            f"name={json.dumps(candidate.name)}",
        ]
        try:
            experiment = load(file, overrides)
        except ExperimentError as exc:
            raise CampaignError(f"{path}: candidate {candidate.name}: {exc}") from None
        planned.append(Planned(candidate, file, experiment, overrides))
    return spec, planned


def play_order(repeat: int, count: int) -> list[tuple[int, int]]:
    """(repetition, candidate index) pairs, interleaved: every candidate's repetition 1 first."""
    return [(index, c) for index in range(1, repeat + 1) for c in range(count)]


def run_campaign(
    spec: CampaignSpec,
    planned: list[Planned],
    campaign_file: Path,
    results_root: Path,
    run_one: RunOne,
    note: Callable[[str], None],
    latest_start: float | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Path, str | None]:
    """Plays the campaign (see the module's text); returns its folder and why it ended early
    (None: every run was played). `latest_start` (Unix time): no run starts after it."""
    out = (results_root / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    (out / "campaign.yaml").write_bytes(campaign_file.read_bytes())
    for plan in planned:
        group = out / plan.candidate.name
        group.mkdir()
        (group / "experiment.yaml").write_bytes(plan.file.read_bytes())
        plan.repetitions = []
        for index in range(1, spec.repeat + 1):
            run = reseed(plan.experiment, index)
            plan.repetitions.append(Repetition(index, f"run-{index}", run.seed, scenario_seed(run)))
    order = play_order(spec.repeat, len(planned))
    played: list[dict[str, Any]] = []

    def record(final: bool, ended: str | None) -> None:
        for plan in planned:
            group = out / plan.candidate.name
            header = (
                plan.candidate.name,
                "run",
                plan.experiment.seed,
                "repetition i: seed + (i - 1), and scenario.generate.seed + (i - 1)",
            )
            note_text = arrivals_note(plan.experiment)
            write_group_file(group, header, spec.repeat, plan.repetitions, note_text, ended)
            if final:
                write_group_summary(group)
        _write_campaign_file(out, spec, planned, played, ended)

    ended: str | None = None
    with Interrupts(note) as interrupts:
        try:
            for number, (index, c) in enumerate(order, 1):
                plan = planned[c]
                repetition = plan.repetitions[index - 1]
                if latest_start is not None and clock() > latest_start:
                    ended = f"--latest-start passed before run {number} of {len(order)}"
                    break
                record(False, None)
                note(
                    f"run {number}/{len(order)}: {plan.candidate.name}, repetition "
                    f"{index}/{spec.repeat} (seed {repetition.seed})"
                )
                group = out / plan.candidate.name
                run = reseed(plan.experiment, index)

                def one(r: Repetition, run: Experiment = run, group: Path = group) -> Path:
                    extra = {"repetition": r.index, "repetitions": spec.repeat}
                    return run_one(run, group, r.folder, extra)

                started = time.time()
                run_repetition(group, repetition, one)
                played.append(
                    {
                        "candidate": plan.candidate.name,
                        "repetition": index,
                        "started": round(started, 3),
                        "status": repetition.status,
                    }
                )
                if repetition.status == "interrupted":
                    ended = f"{plan.candidate.name} repetition {index}: {repetition.end_reason}"
                    break
        except KeyboardInterrupt:
            ended = f"interrupted by {interrupts.received or 'SIGINT'} between runs"
        finally:
            interrupts.cleaning()
            for plan in planned:
                for repetition in plan.repetitions:
                    if repetition.status == "pending":
                        repetition.status = "not run"
                        repetition.end_reason = ended or ""
            record(True, ended)
    return out, ended


def _write_campaign_file(
    out: Path,
    spec: CampaignSpec,
    planned: list[Planned],
    played: list[dict[str, Any]],
    ended: str | None,
) -> None:
    data = {
        "campaign": spec.name,
        "description": spec.description,
        "repeat": spec.repeat,
        "order": "interleaved: repetition 1 of every candidate, then repetition 2, ...",
        "ended_early": ended,
        "candidates": [
            {
                "name": plan.candidate.name,
                "experiment": str(plan.file),
                "overrides": plan.overrides,
                "repetitions": [asdict(r) for r in plan.repetitions],
            }
            for plan in planned
        ],
        "played": played,
    }
    (out / CAMPAIGN_FILE).write_text(json.dumps(data, indent=2))


def group_folders(out: Path, planned: list[Planned]) -> list[Path]:
    return [out / plan.candidate.name for plan in planned]

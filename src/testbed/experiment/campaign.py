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
marked `not run`. `testbed campaign --resume FOLDER` plays those (and the interrupted ones,
whose folders are kept aside) later, in the same order, into the same groups."""

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
    load_group,
    reseed,
    run_repetition,
    scenario_seed,
    write_group_file,
    write_group_summary,
)
from testbed.experiment.lifecycle import Interrupts
from testbed.experiment.spec import Experiment, ExperimentError, load, problems, read_yaml

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


@dataclass(frozen=True)
class Ended:
    """Why a campaign ended before playing every run: a signal or an interrupted run
    (`interrupted`), or --latest-start."""

    reason: str
    interrupted: bool


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
        spec = CampaignSpec.model_validate(read_yaml(path, CampaignError))
    except ValidationError as exc:
        raise CampaignError(f"{path}: {problems(exc)}") from None
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
) -> tuple[Path, Ended | None]:
    """Starts the campaign's folder and plays it (see play_campaign)."""
    out = start_campaign(spec, planned, campaign_file, results_root)
    return out, play_campaign(out, spec, planned, [], run_one, note, latest_start, clock)


def start_campaign(
    spec: CampaignSpec, planned: list[Planned], campaign_file: Path, results_root: Path
) -> Path:
    """The campaign's folder with a group folder per candidate, every repetition pending."""
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
    _record(out, spec, planned, [], None, final=False)
    return out


# a resumed campaign plays these again (a folder they left is kept aside); `pending`: the
# campaign's process was killed during that run
REPLAYED = ("not run", "interrupted", "pending")


def resume_campaign(out: Path) -> tuple[CampaignSpec, list[Planned], list[dict[str, Any]]]:
    """A campaign folder read back to play what it has not: its candidates as campaign.json
    recorded them (experiment file and overrides), every repetition in REPLAYED pending again.
    A folder such a run left is renamed `run-<i>.interrupted-<n>` first, so that nothing it
    measured is lost. CampaignError names what cannot be read."""
    record_file = out / CAMPAIGN_FILE
    try:
        record = json.loads(record_file.read_text())
        spec = CampaignSpec.model_validate(yaml.safe_load((out / "campaign.yaml").read_text()))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CampaignError(f"{out}: not a campaign folder ({exc})") from None
    by_name = {c.name: c for c in spec.candidates}
    planned = []
    try:
        entries = [
            (by_name[e["name"]], Path(e["experiment"]), list(e["overrides"]))
            for e in record["candidates"]
        ]
        groups = [load_group(out / candidate.name) for candidate, _, _ in entries]
    except (KeyError, TypeError, OSError, ValueError) as exc:
        raise CampaignError(f"{out}: campaign.json or a group.json unreadable ({exc!r})") from None
    for (candidate, file, overrides), group in zip(entries, groups, strict=True):
        try:
            experiment = load(file, overrides)
        except ExperimentError as exc:
            raise CampaignError(f"{out}: candidate {candidate.name}: {exc}") from None
        plan = Planned(candidate, file, experiment, overrides, group.repetitions)
        for repetition in plan.repetitions:
            if repetition.status not in REPLAYED:
                continue
            folder = out / candidate.name / repetition.folder
            if folder.exists():
                n = 1
                while folder.with_name(f"{folder.name}.interrupted-{n}").exists():
                    n += 1
                folder.rename(folder.with_name(f"{folder.name}.interrupted-{n}"))
            repetition.status, repetition.end_reason = "pending", ""
        planned.append(plan)
    return spec, planned, list(record.get("played", []))


def play_campaign(
    out: Path,
    spec: CampaignSpec,
    planned: list[Planned],
    played: list[dict[str, Any]],
    run_one: RunOne,
    note: Callable[[str], None],
    latest_start: float | None = None,
    clock: Callable[[], float] = time.time,
) -> Ended | None:
    """Plays every pending repetition, interleaved (see the module's text), recording each in
    `played`; returns why it ended early (None: all were played). `latest_start` (Unix time):
    no run starts after it."""
    order = [
        (index, c)
        for index, c in play_order(spec.repeat, len(planned))
        if planned[c].repetitions[index - 1].status == "pending"
    ]
    ended: Ended | None = None
    with Interrupts(note) as interrupts:
        try:
            for number, (index, c) in enumerate(order, 1):
                plan = planned[c]
                repetition = plan.repetitions[index - 1]
                if latest_start is not None and clock() > latest_start:
                    reason = f"--latest-start passed before run {number} of {len(order)}"
                    ended = Ended(reason, interrupted=False)
                    break
                _record(out, spec, planned, played, None, final=False)
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
                    reason = f"{plan.candidate.name} repetition {index}: {repetition.end_reason}"
                    ended = Ended(reason, interrupted=True)
                    break
        except KeyboardInterrupt:
            reason = f"interrupted by {interrupts.received or 'SIGINT'} between runs"
            ended = Ended(reason, interrupted=True)
        finally:
            interrupts.cleaning()
            for plan in planned:
                for repetition in plan.repetitions:
                    if repetition.status == "pending":
                        repetition.status = "not run"
                        repetition.end_reason = "" if ended is None else ended.reason
            _record(out, spec, planned, played, ended, final=True)
    return ended


def _record(
    out: Path,
    spec: CampaignSpec,
    planned: list[Planned],
    played: list[dict[str, Any]],
    ended: Ended | None,
    final: bool,
) -> None:
    """group.json of every candidate (and, when final, its summary) and campaign.json."""
    for plan in planned:
        group = out / plan.candidate.name
        header = (
            plan.candidate.name,
            "run",
            plan.experiment.seed,
            "repetition i: seed + (i - 1), and scenario.generate.seed + (i - 1)",
        )
        note_text = arrivals_note(plan.experiment)
        why = None if ended is None else ended.reason
        write_group_file(group, header, spec.repeat, plan.repetitions, note_text, why)
        if final:
            write_group_summary(group)
    _write_campaign_file(out, spec, planned, played, ended)


def _write_campaign_file(
    out: Path,
    spec: CampaignSpec,
    planned: list[Planned],
    played: list[dict[str, Any]],
    ended: Ended | None,
) -> None:
    data = {
        "campaign": spec.name,
        "description": spec.description,
        "repeat": spec.repeat,
        "order": "interleaved: repetition 1 of every candidate, then repetition 2, ...",
        "ended_early": None if ended is None else ended.reason,
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

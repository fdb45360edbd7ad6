"""Packs (``pack: K`` in a spec): up to K trials of one variant trained as one fused model
(`zsl_search.train.FusedTrainer`) in one Tune trial (needs Ray).

Every member is still a trial of its own where it matters: an Optuna trial (asked, reported
to and told one by one), a leaderboard row (``trial_id`` ``<tune id>-<member>``) and an
early-stopping decision. Inside a pack, at each ASHA rung (``grace_epochs`` x r^i, r =
``budget.reduction_factor``) only the best 1 in r of the members still training go on; the
others end EARLY_STOPPED there and leave the fused model, so they stop costing compute. ASHA
itself sees a pack by its best member.

Members share everything that decides the networks' shapes, the step structure, the schedule
and evaluation: the pack's first member is sampled freely, the others are sampled by Optuna
with those values fixed (an enqueued partial trial), so they differ only in the per-member
hyperparameters (`zsl_search.train.PER_MEMBER`: rates, betas, cls_weight, gp_lambda).
A variant FusedTrainer cannot fuse (cosgan, filmwgan, zswgan with ``project_att``) gets
packs of one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ._factories import asha_rungs, make_sampler
from ._optuna import METRIC, DefineByRun, warm_start_points
from ._trainable import extras_above, fold_splits, report_epoch, trial_metrics, trial_params

__all__ = ["PackSearch", "run_pack", "member_id", "RUNNING"]

RUNNING = "RUNNING"  # a member's status while it trains; then COMPLETE, EARLY_STOPPED or DIVERGED
CHECKPOINT_FILE = "pack-{fold}.pt"
HISTORY_FILE = "members.pt"


def member_id(trial_id: str, member: int) -> str:
    """A member's trial id on the leaderboard."""
    return f"{trial_id}-{member}"


class PackSearch(Searcher):
    """Optuna behind Tune, one Optuna trial per pack member (see the module docstring).

    Reports each member's best validation H after each of its epochs; tells Optuna COMPLETE
    for a member that trained every epoch and PRUNED for one stopped earlier (in the pack,
    by ASHA, or diverged), FAIL when the pack errored."""

    def __init__(self, spec: Any, *, journal: Path, study_name: str, dataset: str | None) -> None:
        super().__init__(metric=METRIC, mode="max")
        self.spec, self.dataset = spec, dataset
        self.space = DefineByRun(spec)
        self.points = warm_start_points(spec, dataset=dataset) if spec.warm_start else []
        journal.parent.mkdir(parents=True, exist_ok=True)
        self.study = optuna.create_study(
            study_name=study_name, storage=JournalStorage(JournalFileBackend(str(journal))),
            sampler=make_sampler(spec), direction="maximize", load_if_exists=True,
        )
        self.members: dict[str, list[optuna.Trial]] = {}  # Tune trial id -> its members' Optuna trials
        self.reported: dict[int, int] = {}  # Optuna trial number -> last epoch reported
        self.told: set[int] = set()
        self.issued = 0  # members handed out, against budget.trials

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode are fixed; the space is the spec's

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from ..train import PER_MEMBER, can_fuse

        if self.issued >= self.spec.budget.trials:
            return Searcher.FINISHED
        leader = self._ask(self.points.pop(0) if self.points else None)
        variant = leader.params["variant"]
        values = _values(leader, variant)
        params = trial_params(self.spec, {"variant": variant, variant: values}, dataset=self.dataset)
        size = min(self.spec.pack, self.spec.budget.trials - self.issued) if can_fuse(variant, params) else 1
        shared = {"variant": variant, **{f"{variant}/{k}": v for k, v in values.items() if k not in PER_MEMBER}}
        trials = [leader] + [self._ask(shared) for _ in range(size - 1)]
        self.members[trial_id] = trials
        self.issued += size
        if size == 1 and not can_fuse(variant, params):
            return {"variant": variant, variant: values}  # a plain trial (`run_trial`)
        return {"variant": variant, "members": {str(j): {variant: _values(t, variant)} for j, t in enumerate(trials)}}

    def _ask(self, fixed: dict[str, Any] | None) -> optuna.Trial:
        # Enqueue-then-ask at once: the study's queue never holds more than this one trial.
        if fixed:
            self.study.enqueue_trial(fixed, skip_if_exists=False)
        trial = self.study.ask()
        self.space(trial)
        return trial

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        for trial, member in zip(self.members.get(trial_id, []), _member_results(result)):
            if member["epoch"] > self.reported.get(trial.number, 0) and trial.number not in self.told:
                trial.report(member["best_H"], member["epoch"])
                self.reported[trial.number] = member["epoch"]
            if member["status"] != RUNNING:
                self._tell(trial, member)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        members = _member_results(result) if result else []
        if members and not error:
            self.on_trial_result(trial_id, result)  # the last epoch's reports first
        for j, trial in enumerate(self.members.get(trial_id, [])):
            self._tell(trial, None if error or j >= len(members) else members[j])

    def _tell(self, trial: optuna.Trial, member: dict[str, Any] | None) -> None:
        if trial.number in self.told:
            return
        self.told.add(trial.number)
        if member is None:
            self.study.tell(trial, state=TrialState.FAIL)
        elif member["epoch"] >= self.spec.budget.max_epochs and not member.get("diverged"):
            self.study.tell(trial, member["best_H"])
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

    def save(self, checkpoint_path: str) -> None:
        import pickle

        Path(checkpoint_path).write_bytes(pickle.dumps(self.__dict__))

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        self.__dict__.update(pickle.loads(Path(checkpoint_path).read_bytes()))


def _values(trial: optuna.Trial, variant: str) -> dict[str, Any]:
    prefix = f"{variant}/"
    return {k[len(prefix):]: v for k, v in trial.params.items() if k.startswith(prefix)}


def _member_results(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each member's metrics from a pack's result, nested or as Tune hands it to searchers
    (flattened: ``members/<j>/<metric>``)."""
    members: dict[str, dict[str, Any]] = dict(result.get("members", {}))
    for key, value in result.items():
        if key.startswith("members/"):
            _, j, name = key.split("/", 2)
            members.setdefault(j, {})[name] = value
    if not members:  # a plain trial: one member, running until Tune ends it
        return [{**result, "status": RUNNING}]
    return [members[str(j)] for j in range(len(members))]


def _rungs(spec: Any) -> set[int]:
    """The epochs after which a pack keeps its best 1 in ``budget.reduction_factor`` members
    (ASHA's rungs), none without ASHA."""
    if spec.scheduler != "asha":
        return set()
    b = spec.budget
    return set(asha_rungs(b.grace_epochs, b.reduction_factor, b.max_epochs))


def run_pack(config: dict[str, Any], *, spec: Any, source: Any, search: str, cache_dir: str,
             plugins: tuple[str, ...] = ()) -> None:
    """Tune function trainable of one pack: `run_trial`, with one `FusedTrainer` per class
    fold in place of one `Trainer`, reporting every member's metrics (``members``) and the
    pack's best member's as its own."""
    import ray
    import torch
    from ray import tune

    from ..store import fetch_classifier
    from ..train import FusedTrainer
    from ._trainable import run_trial

    if "members" not in config:  # a variant that cannot be fused: one model, as without packs
        return run_trial(config, spec=spec, source=source, search=search, cache_dir=cache_dir, plugins=plugins)
    device, stores, splits = fold_splits(spec, source, search=search, cache_dir=cache_dir, plugins=plugins)
    variant = config["variant"]
    members = [config["members"][str(j)] for j in range(len(config["members"]))]
    params = [trial_params(spec, {"variant": variant, **m}, dataset=splits[0].defaults_name) for m in members]
    k = len(params)

    def classifiers(store: Any) -> list[Any] | None:
        if not spec.runtime.shared_classifier or all(p.cls_weight == 0 for p in params):
            return None
        shared = fetch_classifier(store, seed=spec.seed, epochs=params[0].cls_pretrain_epochs)
        return [shared if p.cls_weight > 0 else None for p in params]

    packs = [FusedTrainer(split, variant=variant, params=params, seeds=[spec.seed] * k, device=device,
                          classifiers=classifiers(store)) for store, split in zip(stores, splits, strict=True)]
    histories: list[list[list[dict[str, Any]]]] = [[[] for _ in packs] for _ in range(k)]  # member, fold, epoch
    status = [RUNNING] * k
    node_id = ray.get_runtime_context().get_node_id()

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            saved = torch.load(Path(d) / HISTORY_FILE, weights_only=False)
            histories, status = saved["histories"], saved["status"]
            for fold, pack in enumerate(packs):
                pack.load_state_dict(torch.load(Path(d) / CHECKPOINT_FILE.format(fold=fold), weights_only=False))

    def save(d: Path) -> None:
        torch.save({"histories": histories, "status": status}, d / HISTORY_FILE)
        for fold, pack in enumerate(packs):
            torch.save(pack.state_dict(), d / CHECKPOINT_FILE.format(fold=fold))

    def report() -> None:
        lead = packs[0]
        per_member = {str(j): {**trial_metrics(histories[j], schedule_steps=lead.schedule_steps), "status": status[j]}
                      for j in range(k)}
        best = max(per_member.values(), key=lambda m: m["best_H"])  # what ASHA compares packs by
        metrics = {**{name: v for name, v in best.items() if name != "status"}, "epoch": lead.epoch, "variant": variant,
                   "node_id": node_id, "first_step_at": first_step_at, "members": per_member, "pack": k,
                   "training": status.count(RUNNING)}
        report_epoch(metrics, save)

    rungs = _rungs(spec)
    first_step_at = time.time()
    while packs[0].step < packs[0].schedule_steps and RUNNING in status:
        for fold, pack in enumerate(packs):
            rows = pack.train_epoch()
            last = pack.step >= pack.schedule_steps
            for pos, row in enumerate(rows):
                j = pack.ids[pos]
                row = {"epoch": pack.epoch, **row}
                if row.get("diverged") or pack.epoch % spec.eval_every == 0 or last or pack.epoch in rungs:
                    row.update(pack.evaluate(pos, extras_above=extras_above(spec, histories[j][fold])).as_dict())
                histories[j][fold].append(row)
        epoch = packs[0].epoch
        for j in range(k):
            if status[j] == RUNNING and any(h[-1].get("diverged") for h in histories[j]):
                status[j] = "DIVERGED"
        if packs[0].step >= packs[0].schedule_steps:
            status = ["COMPLETE" if s == RUNNING else s for s in status]
        elif epoch in rungs:
            running = [j for j in range(k) if status[j] == RUNNING]
            ranked = sorted(running, key=lambda j: -trial_metrics(histories[j], schedule_steps=1)["best_H"])
            for j in ranked[math.ceil(len(running) / spec.budget.reduction_factor):]:
                status[j] = "EARLY_STOPPED"
        for pack in packs:  # stopped members leave the fused model
            pack.keep([pos for pos, j in enumerate(pack.ids) if status[j] == RUNNING])
        report()

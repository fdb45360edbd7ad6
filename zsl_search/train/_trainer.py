"""One training loop for every variant. A variant supplies its networks and its two losses;
this file owns optimisers (TTUR), noise, batches, the frozen-classifier loss, learning-rate
decay, evaluation and checkpoints."""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from .._device import resolve_device
from .._files import atomic_write
from ..errors import ConfigError
from ..models import Batch, CommonParams, get_variant
from ._adam import Adam

if TYPE_CHECKING:
    from ..data import Split
    from ..eval import EvalResult

__all__ = ["Trainer", "TrainResult", "train", "pretrain_classifier", "check_checkpoint"]


def check_checkpoint(path: str | Path) -> Path:
    """``path`` when it can hold a checkpoint `Trainer.save` wrote, judged without reading it
    whole (its zip directory: `torch.save`'s format); else `ConfigError` naming it. For saying
    "resuming from" only about a file that is one; `Trainer.load` still checks what is inside."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; a checkpoint is a file (e.g. run.pt)")
    if path.exists() and not zipfile.is_zipfile(path):
        raise ConfigError(f"{path}: not a zsl-search checkpoint (not a torch.save file); name another file "
                          "(this one is left as it is)")
    return path


def pretrain_classifier(train_x: torch.Tensor, train_y: torch.Tensor, n_seen: int, *, epochs: int, seed: int,
                        device: str | torch.device = "cpu") -> torch.nn.Linear:
    """The frozen seen-class softmax behind the ``cls_weight`` loss, as f-CLSWGAN trains it
    (batch 100, Adam 1e-3): a function of the training features, ``epochs`` and ``seed`` only
    (bit for bit the same whatever the thread count), so one copy can serve many trials."""
    from ..eval import fit_softmax

    cls = fit_softmax(train_x, train_y, n_seen, epochs=epochs, batch_size=100, seed=seed, device=device)
    return cls.eval().requires_grad_(False)


GEN_CHUNK = 8192  # rows per generator call when synthesising evaluation features
FINGERPRINT_ROWS = 64  # feature rows per set that `data_identity` hashes


def data_identity(split: Split) -> dict[str, Any]:
    """What a checkpoint was trained on, cheaply: the split's sizes, and a digest of its labels,
    class semantics and class ids and of ``FINGERPRINT_ROWS`` evenly spaced feature rows of each
    set. Another dataset, protocol or ``--preprocess`` changes every row, so a sample tells them
    apart without hashing the whole feature matrix (hundreds of MB on AWA2)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in ("train_x", "seen_x", "unseen_x"):
        x = getattr(split, name)
        rows = torch.linspace(0, max(x.shape[0] - 1, 0), steps=min(x.shape[0], FINGERPRINT_ROWS), device=x.device)
        digest.update(x.index_select(0, rows.long()).detach().cpu().contiguous().numpy().tobytes())
    for name in ("train_y", "seen_y", "unseen_y", "att", "seen_classes", "unseen_classes"):
        digest.update(getattr(split, name).detach().cpu().contiguous().numpy().tobytes())
    return {"feat_dim": split.feat_dim, "att_dim": split.att_dim, "n_seen": split.n_seen, "n_unseen": split.n_unseen,
            "n_train": int(split.train_y.shape[0]), "digest": digest.hexdigest()}


def evaluate_params(split: Split, generate: Callable[[torch.Tensor, int], torch.Tensor], params: CommonParams, *,
                    seed: int, device: torch.device, select_epoch: bool, cls_epochs: int | None,
                    cls_steps: int | None, extras_above: float | None) -> EvalResult:
    """`evaluate_gzsl` of ``generate`` with the evaluation settings of ``params`` (``syn_num``,
    ``cls_epochs`` unless overridden, ``cls_batch``): what `Trainer.evaluate` and each member of
    a `FusedTrainer` score with."""
    from ..eval import evaluate_gzsl

    return evaluate_gzsl(
        split, generate, syn_num=params.syn_num, seed=seed, device=device,
        cls_epochs=params.cls_epochs if cls_epochs is None else cls_epochs, select_epoch=select_epoch,
        cls_steps=cls_steps, cls_batch=params.cls_batch or None, extras_above=extras_above,
    )


def saved_params(params: CommonParams, saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyperparameters, with the defaults of ``params``'s class for fields added
    since it was written (e.g. ``cls_batch``), so that it still resumes."""
    return {**{f.name: f.default for f in fields(type(params))}, **saved}


def check_same_run(saved: dict[str, Any], mine: dict[str, Any]) -> None:
    """Raise `ConfigError` naming each setting (variant, seed, hyperparameter) in which the run
    that wrote a checkpoint (``saved``) differs from this one (``mine``): resuming it would
    continue another run's schedule and sampling under this one's name."""
    missing = object()
    differ = [k for k in {**saved, **mine} if saved.get(k, missing) != mine.get(k, missing)]
    if not differ:
        return

    def shown(values: dict[str, Any]) -> str:
        return ", ".join(f"{k}={values[k]!r}" if k in values else f"no {k}" for k in differ[:4])
    more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
    raise ConfigError(f"checkpoint was written by another run, with {shown(saved)}{more} (this run: {shown(mine)}); "
                      "resume it with the settings it was written with, or start a new run with another "
                      "checkpoint file")


def check_data_identity(saved: dict[str, Any] | None, mine: dict[str, Any]) -> None:
    """Raise `ConfigError` when a checkpoint's `data_identity` (None: written before it was
    recorded, accepted) is not this run's; checked before any weight is loaded, so another
    feature size gets this line rather than a size-mismatch traceback."""
    if saved is None or saved == mine:
        return
    if any(saved.get(k) != mine[k] for k in ("feat_dim", "att_dim", "n_seen", "n_unseen")):
        raise ConfigError(f"checkpoint was written for another dataset ({_shape(saved)}; this run has {_shape(mine)}); "
                          "resume it on the data it was trained on, or start a new run with another checkpoint file")
    raise ConfigError("checkpoint was trained on other data (another dataset, --protocol, --preprocess, or a --seed "
                      "that splits it otherwise); "
                      "resume it with the data and options it was trained with, or start a new run with another "
                      "checkpoint file")


def _shape(identity: dict[str, Any]) -> str:
    return (f"{identity.get('feat_dim')}-dim features, {identity.get('att_dim')}-dim attributes, "
            f"{identity.get('n_seen')} seen / {identity.get('n_unseen')} unseen classes")


def lr_factor(lr_decay: str, step: int, schedule_steps: int) -> float:
    """The learning-rate multiplier at generator step ``step``: 1, or with ``"linear"`` decay
    constant for the first half of the schedule, then linearly to 0."""
    if lr_decay == "linear":
        return min(1.0, 2.0 * (1.0 - step / max(schedule_steps, 1)))
    return 1.0


def eval_inputs(att: torch.Tensor, n: int, *, nz: int, seed: int, epoch: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise (K * n, nz), attributes (K * n, A)) for ``n`` evaluation features per row of
    ``att``, class-major. The noise has its own generator, seeded from the run seed and the
    epoch, so evaluating never changes the training stream and a resumed run evaluates alike."""
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
    a = att.to(device).repeat_interleave(n, dim=0)
    return torch.randn(a.shape[0], nz, generator=gen, device=device), a


class Trainer:
    """Trains one variant on one split, an epoch at a time, resumable bit for bit.

    Training is counted in generator steps (``step``; an epoch is ``steps_per_epoch`` of them).
    The learning-rate decay and ``Batch.progress`` follow ``step / schedule_steps``, so a run
    can stop part-way through a longer schedule and be exactly that run's prefix: this is how
    `finalize` repeats a validated run that was best at one point of its schedule.

    Example:
        >>> trainer = Trainer(split, variant="fclswgan", params=params, seed=0)
        >>> for _ in range(params.epochs):
        ...     losses = trainer.train_epoch()
        ...     metrics = trainer.evaluate()
    """

    def __init__(
        self, split: Split, *, variant: str, params: CommonParams, seed: int = 0, device: str = "auto",
        schedule_steps: int | None = None, classifier: torch.nn.Linear | None = None,
        optimizer: Literal["fused", "single"] = "fused",
    ) -> None:
        self.variant = get_variant(variant)
        if not isinstance(params, self.variant.params_cls):
            raise ConfigError(f"params for {variant!r} must be {self.variant.params_cls.__name__}; use Variant.make_params")
        self.params, self.seed, self.device = params, seed, resolve_device(device)
        self.split = split
        self.data = data_identity(split)  # once per trainer: `save` writes it every epoch, `load` checks it
        dev = self.device
        self.train_x, self.train_y = split.train_x.to(dev), split.train_y.to(dev)
        self.seen_att = split.att[: split.n_seen].to(dev)  # (n_seen, A): all the GAN ever sees
        # Building under a forked, seeded global RNG makes initialisation (incl. spectral-norm
        # vectors) a function of the seed without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.gan = self.variant.build(
                feat_dim=split.feat_dim, att_dim=split.att_dim, n_seen=split.n_seen, params=params
            ).to(dev)
        self.rng = torch.Generator(device=dev).manual_seed(seed)
        p = params
        if optimizer not in ("fused", "single"):
            raise ConfigError(f"optimizer={optimizer!r}: use 'fused' or 'single'")
        # Fused Adam: one kernel per tensor instead of ~8 elementwise passes over ~17M weights
        # after every step, the same update to float rounding, called directly (`_adam.py`: no
        # torch._dynamo import). "single" is PyTorch's CPU default (the single-tensor loop), kept
        # as `bench/genstep.py`'s baseline.
        if optimizer == "fused":
            self.opt_g = Adam(self.gan.generator.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2))
            self.opt_d = Adam(self.gan.critic_parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2))
        else:
            self.opt_g = torch.optim.Adam(self.gan.generator.parameters(), lr=p.lr_g, betas=(p.beta1, p.beta2),
                                          foreach=False)
            self.opt_d = torch.optim.Adam(self.gan.critic_parameters(), lr=p.lr_d, betas=(p.beta1, p.beta2),
                                          foreach=False)
        # The frozen classifier depends on the data, the seed and cls_pretrain_epochs only, so a
        # search trains it once per node (the feature store serves it) and hands it in here.
        if p.cls_weight > 0 and classifier is None:
            classifier = pretrain_classifier(self.train_x, self.train_y, split.n_seen,
                                             epochs=p.cls_pretrain_epochs, seed=seed, device=dev)
        self.classifier = classifier.to(dev).eval().requires_grad_(False) if p.cls_weight > 0 else None
        self.steps_per_epoch = math.ceil(self.train_y.shape[0] / params.batch_size)
        self.schedule_steps = params.epochs * self.steps_per_epoch if schedule_steps is None else schedule_steps
        if self.schedule_steps < 0:
            raise ConfigError(f"schedule_steps={schedule_steps} must be >= 0")
        self.epoch = 0
        self.step = 0  # generator steps done
        self.history: list[dict[str, float]] = []

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.gan.nz, generator=self.rng, device=self.device)

    def _batch(self) -> Batch:
        idx = torch.randperm(self.train_y.shape[0], generator=self.rng, device=self.device)[: self.params.batch_size]
        y = self.train_y[idx]
        progress = min(self.step / max(self.schedule_steps, 1), 1.0)
        return Batch(real=self.train_x[idx], y=y, a=self.seen_att[y], att=self.seen_att, rng=self.rng, progress=progress)

    def _set_lr(self) -> None:
        factor = lr_factor(self.params.lr_decay, self.step, self.schedule_steps)
        for opt, lr in ((self.opt_g, self.params.lr_g), (self.opt_d, self.params.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def train_epoch(self, max_steps: int | None = None) -> dict[str, float]:
        """One pass: ceil(N / batch) generator steps (at most ``max_steps``), each after
        ``n_critic`` critic steps."""
        p, gan = self.params, self.gan
        gan.train()
        d_total = g_total = 0.0
        steps = self.steps_per_epoch if max_steps is None else max(0, min(max_steps, self.steps_per_epoch))
        for _ in range(steps):
            self._set_lr()
            gan.generator.requires_grad_(False)
            for _ in range(p.n_critic):
                batch = self._batch()
                with torch.no_grad():
                    fake = gan.generator(self._noise(batch.y.shape[0]), batch.a)
                d_loss = gan.critic_loss(batch, fake)
                self.opt_d.zero_grad()
                d_loss.backward()
                self.opt_d.step()
                d_total += d_loss.item()
            gan.generator.requires_grad_(True)
            batch = self._batch()
            for param in self.gan.critic_parameters():
                param.requires_grad_(False)  # no critic grads from the G step: saves a backward
            fake = gan.generator(self._noise(batch.y.shape[0]), batch.a)
            g_loss = gan.generator_loss(batch, fake)
            if self.classifier is not None:
                g_loss = g_loss + p.cls_weight * F.cross_entropy(self.classifier(fake), batch.y)
            self.opt_g.zero_grad()
            g_loss.backward()
            self.opt_g.step()
            for param in self.gan.critic_parameters():
                param.requires_grad_(True)
            g_total += g_loss.item()
            self.step += 1
        self.epoch += 1
        losses = {"step": self.step, "loss_d": d_total / max(steps * p.n_critic, 1), "loss_g": g_total / max(steps, 1)}
        if not all(math.isfinite(v) for v in losses.values()):
            losses["diverged"] = 1.0
        return losses

    def fit_epoch(self, *, until: int | None = None, eval_every: int = 1,
                  **evaluate: Any) -> tuple[dict[str, float], dict[str, float] | None]:
        """One epoch (stopping at generator step ``until``, default the schedule's end), scored
        with `evaluate` (``**evaluate`` passed on) when it is an ``eval_every``-th epoch, the
        last one or a diverged one, and appended to ``history``. Returns (row, metrics or None)."""
        until = self.schedule_steps if until is None else until
        row: dict[str, float] = {"epoch": self.epoch + 1, **self.train_epoch(max_steps=until - self.step)}
        metrics = None
        if row.get("diverged") or self.epoch % eval_every == 0 or self.step >= until:
            metrics = self.evaluate(**evaluate).as_dict()
            row.update(metrics)
        self.history.append(row)
        return row, metrics

    @torch.no_grad()
    def generate(self, att: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` synthetic features per row of ``att`` (K, A), class-major: (K * n, D).

        Uses its own generator (seeded from the run seed and the epoch) so evaluating never
        changes the training stream and a resumed run evaluates identically."""
        z, a = eval_inputs(att, n, nz=self.gan.nz, seed=self.seed, epoch=self.epoch, device=self.device)
        self.gan.generator.eval()
        out = torch.cat([self.gan.generator(z[i : i + GEN_CHUNK], a[i : i + GEN_CHUNK])
                         for i in range(0, a.shape[0], GEN_CHUNK)])
        self.gan.generator.train()
        return out

    def evaluate(self, *, select_epoch: bool = True, cls_epochs: int | None = None,
                 cls_steps: int | None = None, extras_above: float | None = None) -> EvalResult:
        """GZSL U/S/H, ZSL accuracy and retrieval on the split's own evaluation sets; with
        ``select_epoch=False`` the final classifiers' last epoch is reported (nothing is chosen
        on those sets). ``cls_epochs`` overrides ``params.cls_epochs`` and ``cls_steps`` sets the
        GZSL classifier's length in Adam steps (validated choices); ZSL and retrieval only above
        H ``extras_above`` (see `evaluate_gzsl`)."""
        return evaluate_params(self.split, self.generate, self.params, seed=self.seed, device=self.device,
                               select_epoch=select_epoch, cls_epochs=cls_epochs, cls_steps=cls_steps,
                               extras_above=extras_above)

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant.name,
            "params": asdict(self.params),
            "seed": self.seed,
            "data": self.data,
            "epoch": self.epoch,
            "step": self.step,
            "schedule_steps": self.schedule_steps,
            "history": self.history,
            "gan": self.gan.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            # Raw bytes, not a tensor: torch.load's map_location never moves them (see `load`).
            "rng": bytes(self.rng.get_state().numpy()),
            "classifier": None if self.classifier is None else self.classifier.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_data_identity(state.get("data"), self.data)  # first: other data usually means other defaults too
        check_same_run({"variant": state["variant"], "seed": state["seed"], **saved_params(self.params, state["params"])},
                       {"variant": self.variant.name, "seed": self.seed, **asdict(self.params)})
        if state.get("schedule_steps", self.schedule_steps) != self.schedule_steps:
            raise ConfigError(f"checkpoint was written for a schedule of {state['schedule_steps']} generator steps, "
                              f"this run has {self.schedule_steps}; start a new run")
        self.gan.load_state_dict(state["gan"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(_rng_state(state["rng"]))
        if self.classifier is not None:
            self.classifier.load_state_dict(state["classifier"])
        self.epoch, self.history = state["epoch"], list(state["history"])
        self.step = state.get("step", self.epoch * self.steps_per_epoch)  # older checkpoints: whole epochs

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically: a reader never sees a partial file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        atomic_write(path, lambda p: p.write_bytes(buf.getvalue()))

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint written by `save`, on whatever device this trainer uses.

        Everything is read onto the CPU: `load_state_dict` then copies weights and optimizer
        state to the parameters' device, while ``Generator.set_state`` accepts only a CPU
        ByteTensor, so a state mapped to CUDA would make every resume on a GPU fail."""
        path = check_checkpoint(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError) as e:
            raise ConfigError(f"{path}: not a zsl-search checkpoint ({type(e).__name__}); name another file, "
                              "or delete this one to start afresh") from None
        if not isinstance(state, dict) or "variant" not in state:
            raise ConfigError(f"{path}: not a zsl-search checkpoint; name another file, or delete this one to start afresh")
        try:
            self.load_state_dict(state)  # refuses before it changes anything
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def _rng_state(saved: bytes | torch.Tensor) -> torch.Tensor:
    """The CPU ByteTensor ``Generator.set_state`` needs, from a checkpoint's RNG state (bytes;
    a tensor, wherever a map_location put it, from checkpoints of earlier versions)."""
    if isinstance(saved, torch.Tensor):
        return saved.to("cpu", torch.uint8)
    return torch.frombuffer(bytearray(saved), dtype=torch.uint8)


@dataclass
class TrainResult:
    """What ``train`` returns: the last evaluation and the per-epoch history."""

    variant: str
    protocol: str
    epochs: int
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0  # generator steps trained


def train(
    split: Split,
    *,
    variant: str,
    params: CommonParams,
    seed: int = 0,
    device: str = "auto",
    eval_every: int = 1,
    on_epoch: Callable[[Trainer, dict[str, float]], None] | None = None,
    resume: str | Path | None = None,
    select_epoch: bool = True,
    steps: int | None = None,
    schedule_steps: int | None = None,
    cls_epochs: int | None = None,
    cls_steps: int | None = None,
) -> TrainResult:
    """Train ``params.epochs`` epochs, evaluating every ``eval_every`` epochs and at the end.

    ``on_epoch(trainer, row)`` is called after every epoch with that epoch's losses (and
    metrics when it was evaluated). With ``resume`` the run continues from that checkpoint.
    The reported metrics are those of the LAST epoch: picking the best epoch is a decision
    and belongs to the validation split (see ``zsl_search.search``). ``select_epoch``,
    ``cls_epochs`` and ``cls_steps`` are passed to `Trainer.evaluate` (False: the final
    classifier's epoch is not chosen either).

    ``steps`` stops after that many generator steps (the last epoch may be partial) of a
    schedule ``schedule_steps`` long (default: ``params.epochs`` whole epochs): `finalize`
    repeats a validated run up to the point it was chosen at, on the same schedule."""
    start = time.perf_counter()
    trainer = Trainer(split, variant=variant, params=params, seed=seed, device=device, schedule_steps=schedule_steps)
    if resume is not None and Path(resume).exists():
        trainer.load(resume)
    total = trainer.schedule_steps if steps is None else steps
    if total < 0:
        raise ConfigError(f"steps={steps} must be >= 0")

    choice = {"select_epoch": select_epoch, "cls_epochs": cls_epochs, "cls_steps": cls_steps}
    metrics: dict[str, float] | None = None
    while trainer.step < total:
        row, metrics = trainer.fit_epoch(until=total, eval_every=eval_every, **choice)
        if on_epoch is not None:
            on_epoch(trainer, row)
        if row.get("diverged"):
            break
    if metrics is None:  # nothing to train (0 steps, or resumed at the end)
        metrics = trainer.evaluate(**choice).as_dict()
    return TrainResult(
        variant=trainer.variant.name, protocol=split.protocol, epochs=trainer.epoch, metrics=metrics,
        history=trainer.history, seconds=time.perf_counter() - start, steps=trainer.step,
    )

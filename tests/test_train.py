"""The shared training loop: learning, determinism, bit-for-bit resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _variants import contract_variants

from zsl_search.errors import ConfigError
from zsl_search.models import get_variant
from zsl_search.train import Trainer, train

VARIANTS = contract_variants()  # at collection: the registry, the sixth (plugin) variant included


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_learns_on_demo_data_with_its_defaults(name: str, demo_split) -> None:
    """Acceptance: trained with its (demo) defaults, H is clearly above the untrained generator's."""
    v = get_variant(name)
    params = v.make_params(dataset=demo_split.dataset)
    untrained = train(demo_split, variant=name, params=v.make_params({"epochs": 0}, dataset=demo_split.dataset))
    trained = train(demo_split, variant=name, params=params, eval_every=params.epochs)
    assert trained.epochs == params.epochs
    assert trained.metrics["H"] > untrained.metrics["H"] + 0.1, (untrained.metrics, trained.metrics)
    assert trained.metrics["U"] > untrained.metrics["U"]


# Beside the repository (../shared), or where this machine keeps it for clones elsewhere.
PF60 = next((p for p in (Path(__file__).resolve().parents[2] / "shared/data/real/PF60",
                         Path("/work/shared/data/real/PF60")) if (p / "res101.mat").is_file()), Path("absent"))


@pytest.fixture(scope="module")
def pf60_split():
    if not (PF60 / "res101.mat").is_file():
        pytest.skip("the real PF60 feature set (../shared/data/real/PF60) is not on this machine")
    from zsl_search.data import load_xlsa, make_split

    return make_split(load_xlsa(PF60), "validation", seed=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_learns_real_pf60_features_with_its_pf60_defaults(name: str, pf60_split) -> None:
    """On real features (validation protocol): the untrained generator's synthetic unseen features
    are never chosen (U = H = 0); trained with the PF60 defaults, H is clearly above it."""
    v = get_variant(name)
    assert pf60_split.defaults_name == "PF60"
    params = v.make_params(dataset=pf60_split.defaults_name)
    untrained = train(pf60_split, variant=name, params=v.make_params({"epochs": 0}, dataset="PF60"))
    trained = train(pf60_split, variant=name, params=params, eval_every=params.epochs)
    assert trained.metrics["H"] > untrained.metrics["H"] + 0.05, (untrained.metrics, trained.metrics)
    assert trained.metrics["zsl_acc"] > untrained.metrics["zsl_acc"]


def _small(name: str = "fclswgan", **over):
    return get_variant(name).make_params({"hidden": 64, "epochs": 3, "syn_num": 20, "cls_epochs": 3,
                                          "cls_pretrain_epochs": 2, **over})


def test_same_seed_same_numbers(demo_split) -> None:
    a = train(demo_split, variant="fclswgan", params=_small(), seed=3)
    b = train(demo_split, variant="fclswgan", params=_small(), seed=3)
    c = train(demo_split, variant="fclswgan", params=_small(), seed=4)
    assert a.history == b.history
    assert a.history != c.history


@pytest.mark.parametrize("name", ["fclswgan", "cosgan"])
def test_resume_is_bit_for_bit(name: str, demo_split, tmp_path: Path) -> None:
    params = _small(name)
    full = Trainer(demo_split, variant=name, params=params, seed=1)
    for _ in range(3):
        full.train_epoch()

    first = Trainer(demo_split, variant=name, params=params, seed=1)
    first.train_epoch()
    first.save(tmp_path / "ckpt.pt")
    resumed = Trainer(demo_split, variant=name, params=params, seed=1)
    resumed.load(tmp_path / "ckpt.pt")
    assert resumed.epoch == 1
    for _ in range(2):
        resumed.train_epoch()
    for key, value in full.gan.state_dict().items():
        assert torch.equal(value, resumed.gan.state_dict()[key]), key
    assert full.evaluate() == resumed.evaluate()


def test_train_resume_argument_continues_a_run(demo_split, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    seen: list[int] = []
    train(demo_split, variant="fclswgan", params=_small(epochs=2), seed=0,
          on_epoch=lambda t, row: (seen.append(int(row["epoch"])), t.save(ckpt)))
    more = train(demo_split, variant="fclswgan", params=_small(epochs=2), seed=0, resume=ckpt)
    assert seen == [1, 2] and more.epochs == 2 and [r["epoch"] for r in more.history] == [1, 2]
    with pytest.raises(ConfigError, match=r"another run, with seed=0 \(this run: seed=9\)"):
        train(demo_split, variant="fclswgan", params=_small(epochs=2), seed=9, resume=ckpt)
    with pytest.raises(ConfigError, match=r"with epochs=2 \(this run: epochs=3\); resume it with the settings"):
        train(demo_split, variant="fclswgan", params=_small(epochs=3), seed=0, resume=ckpt)


def test_cls_batch_is_the_final_classifiers_batch_and_0_is_the_reference_one(demo_split, tmp_path: Path) -> None:
    from zsl_search.eval import evaluate_gzsl

    trainer = Trainer(demo_split, variant="fclswgan", params=_small(), seed=2)
    trainer.train_epoch()

    def score(cls_batch):
        return evaluate_gzsl(demo_split, trainer.generate, syn_num=20, seed=2, cls_epochs=3, cls_batch=cls_batch)

    reference, small = score(None), score(5)
    assert trainer.evaluate() == reference  # cls_batch 0: batch = syn_num
    assert reference.cls_steps != small.cls_steps  # another batch: other Adam steps per epoch
    trainer.params = _small(cls_batch=5)
    assert trainer.evaluate() == small
    with pytest.raises(Exception, match="'cls_batch' must be >= 0"):
        _small(cls_batch=-1)


def test_a_checkpoint_from_before_a_hyperparameter_existed_resumes_with_its_default(demo_split, tmp_path: Path) -> None:
    trainer = Trainer(demo_split, variant="fclswgan", params=_small(), seed=1)
    trainer.train_epoch()
    state = trainer.state_dict()
    del state["params"]["cls_batch"]  # as written before cls_batch was added
    resumed = Trainer(demo_split, variant="fclswgan", params=_small(), seed=1)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    other = Trainer(demo_split, variant="fclswgan", params=_small(cls_batch=5), seed=1)
    with pytest.raises(ConfigError, match=r"with cls_batch=0 \(this run: cls_batch=5\)"):
        other.load_state_dict(state)  # the missing field means its default, not any value


def test_linear_decay_reaches_zero_over_the_second_half(demo_split) -> None:
    """Constant for the first half of the schedule, then linear to 0, step by step (the rate of
    a step is set before it: the last step of a 4-epoch run trains at 2 / schedule_steps)."""
    t = Trainer(demo_split, variant="cosgan", params=_small("cosgan", epochs=4), seed=0)
    rates = []
    for _ in range(4):
        t.train_epoch()
        rates.append(t.opt_g.param_groups[0]["lr"] / t.params.lr_g)
    total = t.schedule_steps
    assert rates[:2] == [1.0, 1.0]
    assert rates[2:] == pytest.approx([2 * (1 - (total * 3 // 4 - 1) / total), 2 / total])


def test_the_frozen_classifier_does_not_train(demo_split) -> None:
    t = Trainer(demo_split, variant="fclswgan", params=_small(epochs=1), seed=0)
    before = t.classifier.weight.detach().clone()
    t.train_epoch()
    assert torch.equal(before, t.classifier.weight)
    assert Trainer(demo_split, variant="cosgan", params=_small("cosgan"), seed=0).classifier is None  # cls_weight 0


def test_resume_hands_the_rng_a_cpu_state_whatever_the_device(demo_split, tmp_path: Path) -> None:
    """`Generator.set_state` takes only a CPU ByteTensor; a checkpoint mapped onto a GPU used to
    hand it a CUDA tensor and fail every resume there. The `meta` device stands in for CUDA."""
    params = _small()
    trainer = Trainer(demo_split, variant="fclswgan", params=params, seed=1)
    trainer.train_epoch()
    trainer.save(tmp_path / "ckpt.pt")

    # A map_location that moves every tensor elsewhere leaves the RNG state where it is.
    moved = torch.load(tmp_path / "ckpt.pt", map_location="meta", weights_only=False)
    assert next(iter(moved["gan"].values())).device.type == "meta"
    assert isinstance(moved["rng"], bytes)

    class SpyGenerator:
        def __init__(self, real: torch.Generator) -> None:
            self.real, self.states = real, []

        def set_state(self, state: torch.Tensor) -> None:
            self.states.append(state)
            self.real.set_state(state)

        def __getattr__(self, name: str):
            return getattr(self.real, name)

    resumed = Trainer(demo_split, variant="fclswgan", params=params, seed=1)
    spy = resumed.rng = SpyGenerator(resumed.rng)
    resumed.device = torch.device("meta")  # load must not map the checkpoint onto the trainer's device
    resumed.load(tmp_path / "ckpt.pt")
    (state,) = spy.states
    assert state.device.type == "cpu" and state.dtype == torch.uint8
    assert torch.equal(state, trainer.rng.get_state())


def test_stopping_part_way_is_a_prefix_of_the_validated_schedule(demo_split) -> None:
    """`finalize` repeats a run that was best at step k of a schedule S steps long: training k
    steps of that schedule is exactly the first k steps of the full run (learning-rate decay and
    instance noise follow S, not k), and differs from compressing the schedule into k steps."""
    params = _small("cosgan", epochs=4, lr_decay="linear")  # a schedule-dependent variant
    full = Trainer(demo_split, variant="cosgan", params=params, seed=2)
    k = full.steps_per_epoch * 2 + 3  # mid-epoch
    while full.step < k:
        full.train_epoch(max_steps=k - full.step)
    part = train(demo_split, variant="cosgan", params=params, seed=2, steps=k, schedule_steps=full.schedule_steps,
                 select_epoch=False, cls_epochs=2)
    assert part.steps == k and part.epochs == 3  # two whole epochs and a partial one
    assert part.metrics == full.evaluate(select_epoch=False, cls_epochs=2).as_dict()
    assert part.metrics["cls_epoch"] == 1  # the last of the 2 classifier epochs: nothing chosen
    squeezed = train(demo_split, variant="cosgan", params=params, seed=2, steps=k, schedule_steps=k,
                     select_epoch=False, cls_epochs=2)
    assert squeezed.metrics != part.metrics


# Run in a fresh interpreter: reuse_freed_memory changes malloc for the rest of its process.
_MALLOC_PROBE = r"""
import json, resource
import torch
from bench.genstep import random_split
from zsl_search._memory import reuse_freed_memory
from zsl_search.models import get_variant
from zsl_search.train import Trainer

def run():
    # A critic weight of (256 + 16) x 32768 floats, 34 MiB: over glibc's largest mmap threshold
    # (32 MiB), so by default its gradient is mapped anew, and faulted in, at every step.
    split = random_split(256, 16, 4, n=256)
    params = get_variant("fclswgan").make_params({"hidden": 32768, "batch_size": 64, "n_critic": 2,
                                                  "cls_pretrain_epochs": 1, "epochs": 1})
    trainer = Trainer(split, variant="fclswgan", params=params, seed=0)
    losses = [trainer.train_epoch(max_steps=1) for _ in range(3)]  # the heap reaches its working size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    losses += [trainer.train_epoch(max_steps=1) for _ in range(2)]
    return {"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "losses": losses}

torch.set_num_threads(1)
out = {"default": run()}
out["applied"] = reuse_freed_memory()
out["reused"] = run()
print(json.dumps(out))
"""


def test_reused_freed_memory_faults_no_gradient_in_again_and_trains_the_same_numbers() -> None:
    """Trial workers keep freed memory for the next step (`zsl_search._memory`): once the heap
    has its working size, training steps whose gradients exceed 32 MiB fault (almost) no pages
    in, where glibc's default maps and faults them in every step; the numbers are bit for bit
    the same."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MALLOC_PROBE], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])  # the repository root: bench/ imports
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    if not out["applied"]:
        pytest.skip("this libc has no glibc mallopt")
    assert out["default"]["faults"] > 0, out
    assert out["reused"]["faults"] * 4 < out["default"]["faults"], out
    assert out["reused"]["losses"] == out["default"]["losses"]


@pytest.mark.parametrize("name", ["fclswgan", "cosgan"])
def test_the_trainers_adam_steps_as_torch_optim_fused_adam_bit_for_bit(name: str, demo_split) -> None:
    """`zsl_search.train._adam.Adam` calls the kernel `torch.optim.Adam(fused=True)` runs, with the
    same per-tensor moments and step counts and the learning-rate decay read from ``param_groups``:
    the same run, bit for bit."""
    params = _small(name, lr_decay="linear")  # the rate changes within the run
    ours = Trainer(demo_split, variant=name, params=params, seed=5)
    theirs = Trainer(demo_split, variant=name, params=params, seed=5)
    theirs.opt_g = torch.optim.Adam(theirs.gan.generator.parameters(), lr=params.lr_g,
                                    betas=(params.beta1, params.beta2), fused=True)
    theirs.opt_d = torch.optim.Adam(theirs.gan.critic_parameters(), lr=params.lr_d,
                                    betas=(params.beta1, params.beta2), fused=True)
    assert [ours.train_epoch() for _ in range(2)] == [theirs.train_epoch() for _ in range(2)]
    for a, b in zip(ours.gan.state_dict().values(), theirs.gan.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_training_does_not_import_torch_dynamo() -> None:
    """Every `torch.optim` optimiser imports torch._dynamo on first use, 1-1.8 s of CPU in each
    fresh process (a trial worker before its first step); the trainer's own Adam does not."""
    import subprocess
    import sys

    probe = ("import sys\n"
             "from bench.genstep import random_split\n"
             "from zsl_search.models import get_variant\n"
             "from zsl_search.train import Trainer\n"
             "params = get_variant('fclswgan').make_params({'hidden': 32, 'epochs': 1, 'cls_pretrain_epochs': 1,"
             " 'syn_num': 10, 'cls_epochs': 1})\n"
             "t = Trainer(random_split(16, 8, 4, n=64), variant='fclswgan', params=params, seed=0)\n"
             "t.fit_epoch()\n"
             "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"


def test_loading_what_is_not_a_checkpoint_is_one_clear_error(demo_split, tmp_path: Path) -> None:
    from zsl_search.errors import ConfigError

    trainer = Trainer(demo_split, variant="cgan", params=get_variant("cgan").make_params({"epochs": 1}), seed=0)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    for path, message in ((tmp_path / "notes.txt", "not a zsl-search checkpoint"),
                          (tmp_path / "other.pt", "not a zsl-search checkpoint"), (tmp_path, "is a directory")):
        with pytest.raises(ConfigError, match=message):
            trainer.load(path)
    assert (tmp_path / "notes.txt").read_text() == "not a checkpoint"


# -- bad input: one line, nothing trained or overwritten ---------------------------------------
@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli(*args)``: `zsl_search.cli.main` in this process, (exit status, stderr)."""
    from zsl_search.cli import main

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    return run


SMALL_CLI = ["--variant", "fclswgan", "--epochs", "1", "--set", "hidden=64", "--set", "syn_num=20",
             "--set", "cls_epochs=1", "--set", "cls_pretrain_epochs=1"]


def _one_line(err: str, *parts: str) -> None:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


@pytest.mark.parametrize("seed", ["-5", str(2**32), "99999999999999999999"])
def test_train_rejects_a_seed_outside_32_bits_up_front(cli, demo_dir: Path, seed: str) -> None:
    code, err = cli("train", "--data", str(demo_dir), *SMALL_CLI, "--seed", seed)
    assert code == 2
    _one_line(err, f"--seed {seed}: must be an integer from 0 to {2**32 - 1}")


@pytest.mark.parametrize("under", ["afile", "afile/deeper"])
def test_train_rejects_a_checkpoint_under_a_file_before_training(cli, demo_dir: Path, tmp_path: Path,
                                                                 under: str) -> None:
    (tmp_path / "afile").write_text("keep me")
    target = tmp_path / under / "x.pt"
    code, err = cli("train", "--data", str(demo_dir), *SMALL_CLI, "--checkpoint", str(target))
    assert code == 2
    _one_line(err, f"--checkpoint {target}", "is a file, not a directory")
    assert "epoch 1" not in err and (tmp_path / "afile").read_text() == "keep me"


def test_train_refuses_a_checkpoint_that_is_none_before_any_output(demo_dir: Path, tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert main(["train", "--data", str(demo_dir), *SMALL_CLI, "--checkpoint", str(notes)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "resuming" not in err  # not "resuming from" a file it then refuses
    _one_line(err, f"{notes}: not a zsl-search checkpoint")
    assert notes.read_text() == "keep me"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hidden", "1.5", "'hidden': '1.5' is not a valid int"),
    ("epochs", "1.7", "'epochs': '1.7' is not a valid int"),
    ("lr_g", "inf", "'lr_g': 'inf' is not a finite number"),
])
def test_train_rejects_truncated_ints_and_infinite_floats(cli, demo_dir: Path, key: str, value: str,
                                                          message: str) -> None:
    code, err = cli("train", "--data", str(demo_dir), "--variant", "fclswgan", "--set", f"{key}={value}")
    assert code == 2
    _one_line(err, message)


def test_train_refuses_epochs_given_twice(cli, demo_dir: Path) -> None:
    # --epochs would silently win over --set epochs=... (which was not even checked).
    code, err = cli("train", "--data", str(demo_dir), "--variant", "fclswgan", "--epochs", "1", "--set", "epochs=abc")
    assert code == 2
    _one_line(err, "--epochs and --set epochs=... both given; keep one")


def test_resuming_on_another_feature_size_is_one_clear_error(demo_split, tmp_path: Path) -> None:
    """A checkpoint of 2048-dim features loaded for 100-dim ones: the file named, no size-mismatch
    traceback, and the trainer untouched."""
    import dataclasses

    from zsl_search.errors import ConfigError

    narrow = dataclasses.replace(demo_split, **{k: getattr(demo_split, k)[:, :100]
                                                for k in ("train_x", "seen_x", "unseen_x")})
    params = _small(epochs=1)
    Trainer(demo_split, variant="fclswgan", params=params, seed=0).save(tmp_path / "a.pt")
    other = Trainer(narrow, variant="fclswgan", params=params, seed=0)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'a.pt'}: checkpoint was written for another dataset "
                                          rf"\({demo_split.feat_dim}-dim features.*this run has 100-dim features"):
        other.load(tmp_path / "a.pt")
    assert other.epoch == 0 and other.step == 0


def test_resuming_on_other_data_or_preprocessing_is_refused(cli, demo_dir: Path, tmp_path: Path) -> None:
    """The same sizes but other values (another --preprocess, another synthetic draw): refused in
    one line before training, and the checkpoint is left as it was."""
    from zsl_search.data import synthesize

    ckpt = tmp_path / "ck" / "a.pt"
    code, err = cli("train", "--data", str(demo_dir), *SMALL_CLI, "--checkpoint", str(ckpt))
    assert code == 0, err
    written = ckpt.read_bytes()
    other = synthesize(tmp_path / "DEMO", preset="demo", seed=1)
    for extra in (["--data", str(demo_dir), "--preprocess", "l2"], ["--data", str(other)]):
        code, err = cli("train", *extra, *SMALL_CLI, "--checkpoint", str(ckpt))
        assert code == 2
        _one_line(err, f"{ckpt}: checkpoint was trained on other data", "--preprocess")
        assert "epoch 1/1" not in err
    assert ckpt.read_bytes() == written
    code, err = cli("train", "--data", str(demo_dir), *SMALL_CLI, "--checkpoint", str(ckpt))
    assert code == 0, err  # the data it was trained on still resumes it

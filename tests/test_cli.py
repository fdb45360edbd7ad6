"""The command line: exit codes and one-line errors. The first test runs the real
``python -m zsl_search.cli`` process; the others call its `main` in-process (the same code,
without paying an interpreter start per case)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def zsl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zsl_search.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli(*args)`` runs `zsl_search.cli.main` in this process: (exit status, stdout, stderr)."""
    from zsl_search.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_train_json_and_tensorboard(demo_dir: Path, tmp_path: Path) -> None:
    r = zsl("train", "--data", str(demo_dir), "--variant", "cosgan", "--epochs", "2", "--set", "hidden=64",
            "--set", "syn_num=20", "--json", "--logdir", str(tmp_path / "tb"), "--checkpoint", str(tmp_path / "c.pt"))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("variant", "protocol", "epochs", "U", "S", "H", "zsl_acc", "retrieval_map", "seconds"):
        assert key in summary
    assert summary["variant"] == "cosgan" and summary["protocol"] == "validation" and summary["epochs"] == 2
    assert 0 <= summary["H"] <= 1 and summary["params"]["hidden"] == 64
    assert "epoch 1/2" in r.stderr and "epoch 2/2" in r.stderr  # progress per epoch with U/S/H
    assert "H=" in r.stderr
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "c.pt").exists() and "resuming from" not in r.stderr
    more = zsl("train", "--data", str(demo_dir), "--variant", "cosgan", "--epochs", "3", "--set", "hidden=64",
               "--set", "syn_num=20", "--checkpoint", str(tmp_path / "c.pt"))
    assert more.returncode == 2 and "with epochs=2 (this run: epochs=3)" in more.stderr  # another run's file
    again = zsl("train", "--data", str(demo_dir), "--variant", "cosgan", "--epochs", "2", "--set", "hidden=64",
                "--set", "syn_num=20", "--checkpoint", str(tmp_path / "c.pt"))
    assert again.returncode == 0 and f"resuming from {tmp_path / 'c.pt'}" in again.stdout, again.stderr
    assert "epoch 1/2" not in again.stdout  # both epochs were done: nothing left to train


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "nope"], "unknown variant 'nope'; valid variants: cgan, cosgan, fclswgan, filmwgan, "),
        (["--variant", "cgan", "--set", "gp_lambda=3"], "unknown hyperparameter 'gp_lambda' for variant 'cgan'; valid:"),
        (["--variant", "cgan", "--set", "lr_g"], "--set 'lr_g': expected KEY=VALUE"),
        (["--variant", "cgan", "--set", "lr_g=-1"], "'lr_g' must be > 0"),
        (["--variant", "cgan", "--device", "tpu"], "--device tpu: expected auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_train_arguments_exit_2_with_one_line(cli, demo_dir: Path, args: list[str], message: str) -> None:
    code, _, err = cli("train", "--data", str(demo_dir), *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_cuda_index_past_the_devices_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here: pretend two, as a two-GPU node reports them, to check the index rule itself.
    import torch

    from zsl_search._device import resolve_device
    from zsl_search.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"^--device cuda:2: this machine has 2 CUDA device\(s\), cuda:0 to cuda:1$"):
        resolve_device("cuda:2", flag="--device")


@pytest.mark.parametrize(("args", "line"), [
    (["frobnicate"], "zsl-search: error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'data', "
                     "'train', 'search', 'leaderboard', 'finalize', 'variants'); see `zsl-search --help`"),
    (["search", "run"], "zsl-search search run: error: the following arguments are required: spec; "
                        "see `zsl-search search run --help`"),
    (["train", "--data", "d", "--variant", "cgan", "--protocol", "foo"],
     "zsl-search train: error: argument --protocol: invalid choice: 'foo' (choose from 'validation', 'test'); "
     "see `zsl-search train --help`"),
])
def test_a_usage_error_is_one_line_pointing_at_help(capsys, args: list[str], line: str) -> None:
    # argparse would print the whole usage block above its error.
    from zsl_search.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and capsys.readouterr().err.splitlines() == [line]


def test_a_usage_error_of_the_real_process_is_one_line() -> None:
    r = zsl("search", "resume", "x")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "zsl-search search resume: error: the following arguments are required: --storage; "
        "see `zsl-search search resume --help`"]


def test_missing_dataset_is_one_line(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "--data", str(tmp_path / "nowhere"), "--variant", "fclswgan")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "nowhere" in err and "Traceback" not in err


def test_train_reads_the_built_in_demo_set_as_a_spec_does(cli, tmp_path: Path, monkeypatch) -> None:
    # `--data demo` is what a spec's `dataset.path: demo` is, from any directory.
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", "--data", "demo", "--variant", "cgan", "--epochs", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["dataset"] == "DEMO" and list(tmp_path.iterdir()) == []


def test_data_synth_then_info(cli, tmp_path: Path) -> None:
    out = tmp_path / "mini"
    code, _, err = cli("data", "synth", str(out), "--preset", "demo", "--seed", "2", "--format", "v7.3")
    assert code == 0, err
    code, stdout, err = cli("data", "info", str(out), "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["classes"] == 40 and info["protocols"]["test"]["n_unseen"] == 10
    assert info["protocols"]["validation"]["n_train"] > 0
    # Every built-in variant has demo defaults.
    # (A test variant another test registered in this process may list its own.)
    builtin = {"fclswgan", "zswgan", "filmwgan", "cgan", "cosgan"}
    assert builtin <= set(info["variant_defaults"])
    assert info["defaults"] == "DEMO" and {info["variant_defaults"][v] for v in builtin} == {"DEMO"}


def test_data_info_on_a_broken_file(cli, tmp_path: Path) -> None:
    (tmp_path / "res101.mat").write_bytes(b"not a mat file")
    (tmp_path / "att_splits.mat").write_bytes(b"nor this")
    code, _, err = cli("data", "info", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert ".mat" in err and len(err.strip().splitlines()) == 1


def test_variants_lists_all() -> None:
    r = zsl("variants")
    assert r.returncode == 0
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["cgan", "cosgan", "fclswgan", "filmwgan", "zswgan"]


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_into_a_reader_that_stops_early_is_no_traceback(unbuffered: str) -> None:
    # `zsl-search variants | head -1`: the reader is gone. Buffered, the write fails at the
    # final flush; unbuffered, at the first print. `variants` also ends with the immediate exit.
    import os

    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    p = subprocess.Popen([sys.executable, "-m", "zsl_search.cli", "variants"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0, env=env)
    p.stdout.close()  # before it writes: every write hits a closed pipe
    assert p.wait(timeout=300) == 141
    assert "Traceback" not in p.stderr.read().decode()


@pytest.mark.parametrize(("argv", "hooks_run"), [
    (["search", "validate", "experiments/quickstart.yaml"], False),  # no Ray imported: the exit at once
    (["variants"], False),
    (["train", "--data", "demo", "--variant", "cgan", "--epochs", "0", "--json"], True),  # the normal exit
])
def test_commands_that_never_touched_ray_skip_the_exit_hooks(argv: list[str], hooks_run: bool) -> None:
    # Skipping C++ static destructors (os._exit) avoids Arrow's thread pools aborting a short
    # process ("terminate called without an active exception", exit 134) after its output.
    script = ("import atexit, sys; atexit.register(lambda: print('exit hooks ran', file=sys.stderr)); "
              f"sys.argv = ['zsl-search', *{argv!r}]; from zsl_search.cli import console; console()")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("exit hooks ran" in r.stderr) == hooks_run and r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize(("flag", "value", "message"), [
    # /proc takes no new file, even from root (whom permission bits never stop).
    ("--checkpoint", "/proc/zsl.pt", "--checkpoint /proc/zsl.pt: directory /proc is not writable"),
    ("--logdir", "/proc/zsl-runs", "--logdir /proc/zsl-runs: /proc is not writable"),
    ("--set", "hidden=100000000000", "out of memory ("),
])
def test_train_refuses_what_it_cannot_write_or_hold_in_one_line(cli, flag: str, value: str, message: str) -> None:
    code, _, err = cli("train", "--data", "demo", "--variant", "cgan", "--epochs", "1", flag, value)
    assert code == 2 and err.startswith(f"zsl-search: error: {message}") and err.count("\n") == 1, err[-2000:]


@pytest.mark.parametrize("argv", [
    ["data", "synth", ""], ["data", "info", ""], ["train", "--data", "", "--variant", "cgan"],
    ["train", "--data", "demo", "--variant", "cgan", "--logdir", " "],
])
def test_an_empty_path_is_refused_not_taken_as_the_current_directory(argv: list[str], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from zsl_search.cli import main

    monkeypatch.chdir(tmp_path)  # an unset "$DATA" used to read or write here
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "empty; name a file or directory" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_data_info_takes_demo_as_every_other_dataset_argument_does(cli) -> None:
    code, out, err = cli("data", "info", "demo", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "DEMO"
    code, _, err = cli("data", "info", "no-such-dir")
    assert code == 2 and "dataset no-such-dir: not a directory" in err and err.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--att-file", "A.mat"], "--att-file is the real att_splits.mat of the dataset --like names; add --like NAME"),
    (["--preset", "like"], "--preset like needs --like NAME and --att-file PATH"),
    (["--like", "AWA2"], "--preset like needs --like NAME and --att-file PATH"),
    (["--scale", "0"], "--scale 0: must be > 0"),
    (["--feat-dim", "0"], "--feat-dim 0: must be a positive integer"),
])
def test_bad_synth_flags_are_named_as_flags_and_write_nothing(cli, tmp_path: Path, args: list[str],
                                                               message: str) -> None:
    code, _, err = cli("data", "synth", str(tmp_path / "out"), *args)
    assert code == 2 and err == f"zsl-search: error: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1 and "=" not in err.split(":", 2)[2] and not (tmp_path / "out").exists()


def test_finalize_prints_the_finalists_it_retrained_not_a_higher_ranked_cut_short_trial(
        cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zsl_search.search as search

    def row(rank: int, tid: str, status: str, test_h: float | None) -> dict:
        return {"rank": rank, "trial_id": tid, "variant": "cgan", "status": status, "H": 0.9 - rank / 10, "U": 0.5,
                "S": 0.5, "zsl_acc": 0.5, "epochs": 3, "pareto": rank == 1,
                "config_json": json.dumps({"hidden": 64, "lr_g": rank / 1000}),
                "test_H_mean": test_h, "test_H_std": 0.0 if test_h is not None else None}

    board = [row(1, "cut", "INTERRUPTED", None), row(2, "best", "COMPLETE", 0.61), row(3, "next", "EARLY_STOPPED", 0.5)]
    asked = {}
    monkeypatch.setattr(search, "finalize", lambda *a, **kw: asked.update(kw) or board)
    code, out, err = cli("finalize", str(tmp_path), "--search", "s", "--top-k", "1", "--seeds", "1")
    assert code == 0 and asked["top_k"] == 1, err
    header, *lines = out.splitlines()
    assert header.split()[:2] == ["rank", "trial_id"] and len(lines) == 1
    assert lines[0].split()[:3] == ["2", "best", "cgan"] and "0.61" in lines[0]
    from zsl_search.leaderboard import format_rows

    shown = format_rows(board, fmt="table").splitlines()  # what `leaderboard show` prints for it
    assert lines[0].split() == next(line.split() for line in shown if line.split()[1] == "best")  # same key params


def test_a_benchmark_without_defaults_of_its_own_is_accepted_as_reference(cli, demo_dir: Path) -> None:
    # APY has no per-dataset defaults: it is no typo, and trains (and shows) the reference ones.
    code, out, err = cli("train", "--data", str(demo_dir), "--variant", "cgan", "--defaults", "apy", "--epochs", "1",
                         "--set", "hidden=32", "--set", "syn_num=10", "--set", "cls_epochs=1", "--json")
    assert code == 0, err
    assert "defaults: reference" in out + err and json.loads(out.strip().splitlines()[-1])["params"]["syn_num"] == 10
    from zsl_search.search import parse_spec

    assert parse_spec({"name": "a", "dataset": {"path": "demo", "defaults": "APY"}, "variants": ["cgan"],
                       "budget": {"trials": 1, "max_epochs": 1}}).dataset.defaults.upper() == "APY"
    code, out, _ = cli("variants", "--dataset", "APY")
    assert code == 0 and "fclswgan" in out
    code, _, err = cli("train", "--data", str(demo_dir), "--variant", "cgan", "--defaults", "APYY")
    assert code == 2 and "--defaults: no variant has defaults called 'APYY' (did you mean APY?)" in err
    assert "as APY does" in err


def test_python_dash_m_zsl_search_is_the_same_command() -> None:
    r = subprocess.run([sys.executable, "-m", "zsl_search", "variants"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split()[0] == "cgan", r.stderr

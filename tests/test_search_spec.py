"""Search specs: every shipped spec validates; bad specs fail with every problem and its field path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zsl_search.errors import SpecError
from zsl_search.models import Categorical, Float, Int
from zsl_search.search import load_spec, parse_spec

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))

BASE = {
    "name": "t",
    "dataset": {"path": "demo"},
    "variants": ["fclswgan", "filmwgan"],
    "budget": {"trials": 4, "max_epochs": 3, "grace_epochs": 1},
}


def test_the_shipped_specs_exist() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "pf60", "awa1", "awa2", "cub", "sun", "apy", "flo", "seed-table-awa1", "seed-table-awa2",
            "seed-table-cub", "own-images"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_shipped_spec_is_valid_and_starts_with_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# zsl-search search run experiments/") and path.name in first
    load_spec(path)


def test_space_overrides_fix_narrow_and_replace() -> None:
    spec = parse_spec({**BASE, "space": {
        "all": {"hidden": 128},
        "fclswgan": {"lr_g": {"low": 1e-4, "high": 2e-4, "log": True}, "syn_num": {"choices": [10, 20]}},
        "filmwgan": {"film_depth": {"low": 1, "high": 2}, "beta2": {"choices": [0.9, 0.999]}},
    }})
    dists, fixed = spec.variant_space("fclswgan")
    assert fixed == {"hidden": 128} and "hidden" not in dists
    assert dists["lr_g"] == Float(1e-4, 2e-4, True) and dists["syn_num"] == Categorical((10, 20))
    dists, fixed = spec.variant_space("filmwgan")
    assert dists["film_depth"] == Int(1, 2) and dists["beta2"] == Categorical((0.9, 0.999))
    assert dists["gp_lambda"] == Float(1.0, 20.0, True)  # the variant's own default space otherwise


BAD = [
    ({"name": None}, "name: "),
    ({"budget": {"trials": -1, "max_epochs": 3}}, "budget.trials: Input should be greater than or equal to 1"),
    ({"budget": {"trials": 2}}, "budget.max_epochs: required field is missing"),
    ({"variants": ["fclswgan", "stylegan"]}, "variants[1]: unknown variant 'stylegan'"),
    ({"variants": []}, "variants: "),
    ({"colour": "red"}, "colour: unknown field"),
    ({"budget": {"trials": 2, "max_epochs": "many"}}, "budget.max_epochs: Input should be a valid integer"),
    ({"space": {"fclswgan": {"lr_g": {"low": 1e-3, "high": 1e-4}}}}, "space.fclswgan.lr_g: low (0.001) > high (0.0001)"),
    ({"space": {"fclswgan": {"lr_g": {"low": 1e-3, "high": 1e-3}}}}, "space.fclswgan.lr_g: empty range"),
    ({"space": {"fclswgan": {"syn_num": {"choices": []}}}}, "space.fclswgan.syn_num: choices must be a non-empty list"),
    ({"space": {"fclswgan": {"film_depth": 2}}}, "space.fclswgan.film_depth: unknown hyperparameter for fclswgan"),
    ({"space": {"all": {"lr_x": 0.1}}},  # once, not once per variant
     "space.all.lr_x: no variant of this search has such a hyperparameter; did you mean lr_g or lr_d?"),
    ({"space": {"all": {"film_depth": 2}}}, "space.all.film_depth: unknown hyperparameter for fclswgan; valid: "),
    ({"space": {"cgan": {"lr_g": 1e-4}}}, "space.cgan: not one of the spec's variants"),
    ({"space": {"filmwgan": {"film_depth": 9}}}, "'film_depth' must be between 1 and 4"),
    ({"budget": {"trials": 2, "max_epochs": 3, "grace_epochs": 5}}, "budget.grace_epochs: 5 > budget.max_epochs (3)"),
    ({"budget": {"trials": 2, "max_epochs": 3, "reduction_factor": 1}},
     "budget.reduction_factor: Input should be greater than or equal to 2"),
    ({"resources": {"cpu": 0}}, "resources.cpu: Input should be greater than 0"),
    ({"scheduler": "pbt"}, "scheduler: Input should be 'asha' or 'fifo'"),
    ({"protocol": "test"}, "protocol: 'test' chooses hyperparameters, epochs and classifier epochs on the TEST split"),
    ({"select_on_test": True}, "select_on_test: true needs protocol: test"),
    ({"storage": "s3://"}, "storage: s3://: invalid bucket name ''"),
    ({"storage": "gs://bucket/zsl"}, "storage: gs://bucket/zsl: unsupported storage scheme 'gs'"),
    ({"pack": 0}, "pack: Input should be greater than or equal to 1"),
    ({"budget": {"trials": True, "max_epochs": 3}}, "budget.trials: Input should be a valid integer (got True)"),
    ({"space": {"fclswgan": {"hidden": {"choices": [256, "abc"]}}}}, "space.fclswgan.hidden: choices: hyperparameter 'hidden': 'abc'"),
    ({"space": {"fclswgan": {"lr_g": {"low": 1e-4, "high": 1e-3, "log": "false"}}}},
     "space.fclswgan.lr_g: log must be true or false (got 'false')"),
    ({"dataset": {"path": "demo", "defaults": "PF06"}}, "dataset.defaults: no variant has defaults called 'PF06'"),
    # Seeds numpy and Optuna cannot take would fail in the driver, after the search was claimed.
    ({"sampler": {"name": "tpe", "seed": -1}}, "sampler.seed: Input should be greater than or equal to 0"),
    ({"seed": 2**32}, "seed: Input should be less than or equal to 4294967295"),
    ({"seed": 1.5}, "seed: Input should be a valid integer"),
    # A range's ends are values trials get: each must be valid, as a fixed value must be.
    ({"space": {"fclswgan": {"lr_g": {"low": float("nan"), "high": 1e-3}}}},
     "space.fclswgan.lr_g: low and high must be finite numbers (got nan, 0.001)"),
    ({"space": {"fclswgan": {"beta1": {"low": 0.5, "high": 1.0}}}},
     "space.fclswgan.beta1: range 0.5..1.0: hyperparameter 'beta1' must be in [0, 1)"),
    ({"space": {"fclswgan": {"lr_g": {"low": -1e-3, "high": 1e-3}}}}, "hyperparameter 'lr_g' must be > 0"),
    ({"space": {"fclswgan": {"hidden": {"low": 0, "high": 64}}}}, "range 0..64: hyperparameter 'hidden' must be >= 1"),
    ({"space": {"filmwgan": {"film_depth": {"low": 2, "high": 8}}}}, "'film_depth' must be between 1 and 4"),
    ({"resources": {"gpu": 1.5}}, "resources.gpu: a fraction of one GPU (e.g. 0.5) or whole GPUs"),
    ({"storage": ""}, "storage: '' is not a results location"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_specs_name_the_field(change: dict, message: str) -> None:
    data = {**copy.deepcopy(BASE), **change}
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert message in str(e.value)


def test_asha_and_packs_stop_at_the_rungs_of_the_specs_reduction_factor() -> None:
    """budget.reduction_factor (default 3) sets both ASHA's factor and the rungs a pack keeps
    its best 1 in r members at: grace_epochs x r^i below max_epochs."""
    from zsl_search.search._factories import make_scheduler
    from zsl_search.search._pack import _rungs

    spec = parse_spec({**BASE, "budget": {"trials": 4, "max_epochs": 20, "grace_epochs": 2}})
    assert spec.budget.reduction_factor == 3 and _rungs(spec) == {2, 6, 18}
    assert make_scheduler(spec)._reduction_factor == 3
    spec = spec.override({"budget.reduction_factor": 2})
    assert _rungs(spec) == {2, 4, 8, 16} and make_scheduler(spec)._reduction_factor == 2
    assert _rungs(spec.override({"scheduler": "fifo"})) == set()


def test_all_problems_are_reported_at_once() -> None:
    data = {**copy.deepcopy(BASE), "colour": 1, "budget": {"trials": 0, "max_epochs": -2}}
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert len(e.value.problems) == 3


def test_cli_validate_bad_spec_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    spec = {**copy.deepcopy(BASE), "variants": ["nope"], "storage": str(tmp_path / "results")}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    for action in ("validate", "run"):
        r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", action, str(path)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "variants[0]: unknown variant 'nope'" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()  # nothing was started or written


def test_a_problem_of_an_all_entry_is_said_once_for_every_variant_it_hits() -> None:
    data = {**copy.deepcopy(BASE), "variants": ["fclswgan", "filmwgan", "cgan"],
            "space": {"all": {"beta1": {"low": 1.5, "high": 2.0}}}}
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert e.value.problems == ["space.all.beta1: range 1.5..2.0: hyperparameter 'beta1' must be in [0, 1) "
                                "(for fclswgan, filmwgan, cgan)"]
    data["space"] = {"all": {"lr_x": 0.1, "beta1": 0.5}}  # a name no variant has: one line, with the near ones
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert e.value.problems == ["space.all.lr_x: no variant of this search has such a hyperparameter; did you mean "
                                "lr_g or lr_d? (`zsl-search variants NAME` lists a variant's)"]


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    # `<<: *anchor` repeats another mapping's entries, and the mapping's own keys override them.
    path = tmp_path / "merge.yaml"
    path.write_text("name: t\ndataset: {path: demo}\nvariants: [fclswgan, cgan]\nbudget: {trials: 2, max_epochs: 2}\n"
                    "space:\n  fclswgan: &c {lr_g: {low: 1.0e-4, high: 1.0e-3}, hidden: 128}\n"
                    "  cgan: {<<: *c, hidden: 64}\n")
    assert load_spec(path).space["cgan"] == {"lr_g": {"low": 1e-4, "high": 1e-3}, "hidden": 64}


def test_numbers_written_as_1e_minus_4_are_numbers(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) alone reads 1e-4 as the string '1e-4': "low and high must be numbers".
    path = tmp_path / "exp.yaml"
    path.write_text("name: t\ndataset: {path: demo}\nvariants: [cgan]\nbudget: {trials: 2, max_epochs: 2}\n"
                    "space:\n  cgan: {lr_g: {low: 1e-4, high: 2E-3, log: true}, lr_d: 5e-4, cls_weight: .5e-1}\n")
    spec = load_spec(path)
    assert spec.variant_space("cgan").searched["lr_g"] == Float(1e-4, 2e-3, True)
    assert spec.space["cgan"]["lr_d"] == 5e-4 and spec.space["cgan"]["cls_weight"] == 0.05
    path.write_text(path.read_text().replace("name: t", "name: 1e5x"))  # not a number: stays a string
    assert load_spec(path).name == "1e5x"


def test_a_sampler_or_dataset_may_be_given_by_its_name_alone() -> None:
    base = {k: v for k, v in copy.deepcopy(BASE).items() if k not in ("sampler", "dataset")}
    spec = parse_spec({**base, "sampler": "random", "dataset": "demo"})
    assert (spec.sampler.name, spec.sampler.seed, spec.dataset.path) == ("random", 0, "demo")
    with pytest.raises(SpecError, match=r"sampler: expected a mapping of its fields \(got 3\)"):
        parse_spec({**base, "dataset": "demo", "sampler": 3})
    with pytest.raises(SpecError, match=r"sampler.name: Input should be 'tpe', 'random' or 'cmaes'"):
        parse_spec({**base, "dataset": "demo", "sampler": "nope"})


def test_schema_errors_and_the_checks_behind_them_are_reported_together() -> None:
    # One `search validate` lists everything: before, the variant and space checks waited until
    # the budget (a schema error) was fixed.
    bad = {"name": "t", "dataset": {"path": "demo"}, "variants": ["fclswgan", "nosuch"], "scheduler": "hyperband",
           "space": {"fclswgan": {"lr_g": {"low": 1e-3, "high": 1e-4}}}}
    with pytest.raises(SpecError) as caught:
        parse_spec(bad)
    problems = caught.value.problems
    assert problems[:2] == ["budget: required field is missing",
                            "scheduler: Input should be 'asha' or 'fifo' (got 'hyperband')"]
    assert problems[2].startswith("variants[1]: unknown variant 'nosuch'; valid: cgan, cosgan, fclswgan")
    assert problems[3:] == ["space.fclswgan.lr_g: low (0.001) > high (0.0001)"]
    with pytest.raises(SpecError) as caught:  # nothing said about the stand-ins of failed fields
        parse_spec({**bad, "variants": "fclswgan", "budget": {"trials": 2, "max_epochs": 1, "grace_epochs": 5}})
    assert [p.split(":")[0] for p in caught.value.problems] == ["variants", "scheduler", "budget.grace_epochs"]


def test_a_bad_search_name_says_what_a_name_may_hold() -> None:
    with pytest.raises(SpecError, match=r"name: 'Bad Name' is not a search name: use 1-63 lowercase letters"):
        parse_spec({**copy.deepcopy(BASE), "name": "Bad Name"})


def test_whole_gpus_and_fractions_of_one_pass() -> None:
    for gpu in (0.25, 1, 2):
        assert parse_spec({**copy.deepcopy(BASE), "resources": {"gpu": gpu}}).resources.gpu == gpu


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    # Plain YAML keeps the last of two `name:` keys silently.
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False) + "name: other\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    line = len(path.read_text().splitlines())
    assert f"key 'name' appears twice; keep one (line {line}, column 1)" in str(e.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: t\nbudget: {trials: 2, max_epochs: 3, trials: 4}\n")
    with pytest.raises(SpecError, match="key 'trials' appears twice"):
        load_spec(nested)


def test_a_yaml_syntax_error_says_what_and_where(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: t\nbudget: trials: 2\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert "cannot read YAML: mapping values are not allowed here (line 2, column 15)" in str(e.value)


def test_cli_validate_missing_file(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "validate", str(tmp_path / "x.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr == f"zsl-search: error: {tmp_path / 'x.yaml'}: file not found\n"
    with pytest.raises(SpecError, match=f"{tmp_path}: a directory, not a spec file; name the YAML file in it"):
        load_spec(tmp_path)


def test_selecting_on_test_is_an_explicit_opt_in() -> None:
    spec = parse_spec({**BASE, "protocol": "test", "select_on_test": True})
    assert spec.protocol == "test" and spec.select_on_test
    assert not parse_spec(BASE).select_on_test


def test_cli_refuses_a_test_protocol_spec_without_the_opt_in_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "peek.yaml"
    path.write_text(yaml.safe_dump({**BASE, "protocol": "test"}))
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "select_on_test: true" in r.stderr


def test_a_binary_spec_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(SpecError, match="not a text file"):
        load_spec(path)


def test_known_defaults_names_pass() -> None:
    for name in ("pf60", "CUB", "reference"):
        assert parse_spec({**copy.deepcopy(BASE), "dataset": {"path": "demo", "defaults": name}}).dataset.defaults == name

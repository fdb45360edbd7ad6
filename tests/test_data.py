"""Data layer: synthesis, loading, validation errors, protocols, preprocessing, real xlsa17 files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from zsl_search.data import (KNOWN_DATASETS, PROTOCOLS, Split, load_xlsa, make_split, read_mat, synthesize,
                             validation_rows, write_mat)
from zsl_search.data._mat import cellstr_to_list
from zsl_search.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
TENSORS = ("train_x", "train_y", "seen_x", "seen_y", "unseen_x", "unseen_y", "att", "seen_classes", "unseen_classes")
# published sizes: trainval / test_seen / test_unseen, seen / unseen classes, att dim
PUBLISHED = {
    "AWA1": ((19832, 4958, 5685), (40, 10), 85),
    "AWA2": ((23527, 5882, 7913), (40, 10), 85),
    "CUB": ((7057, 1764, 2967), (150, 50), 312),
    "SUN": ((10320, 2580, 1440), (645, 72), 102),
}


def _xlsa_root() -> Path | None:
    for cand in (REPO_ROOT.parent / "shared" / "data" / "xlsa17", Path("/work/shared/data/xlsa17")):
        if cand.is_dir():
            return cand
    return None


def _real_att(name: str, file: str = "att_splits.mat") -> Path:
    root = _xlsa_root()
    if root is None or not (root / name / file).is_file():
        pytest.skip(f"real xlsa17 file {name}/{file} not available")
    return root / name / file


def _same_split(a: Split, b: Split) -> bool:
    return all(getattr(a, n).dtype == getattr(b, n).dtype and torch.equal(getattr(a, n), getattr(b, n))
               for n in TENSORS) and (a.dataset, a.protocol) == (b.dataset, b.protocol)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "DEMO", seed=0)


@pytest.fixture(scope="module")
def demo(demo_dir):
    return load_xlsa(demo_dir)


# ---------------------------------------------------------------- demo synth -> load -> protocols

def test_demo_loads(demo):
    assert demo.name == "DEMO" and demo.semantics == "att_splits.mat"
    n = demo.features.shape[0]
    assert demo.features.dtype == np.float32 and demo.features.shape == (n, 128)
    assert demo.labels.dtype == np.int64 and demo.labels.min() == 0 and demo.labels.max() == 39
    assert demo.att.shape == (40, 16) and np.allclose(np.linalg.norm(demo.att, axis=1), 1.0, atol=1e-5)
    assert (demo.features >= 0).all()
    assert set(demo.locs) == {"trainval", "test_seen", "test_unseen", "train", "val"}
    parts = np.concatenate([demo.locs[k] for k in ("trainval", "test_seen", "test_unseen")])
    assert np.array_equal(np.sort(parts), np.arange(n))  # disjoint and covering
    assert np.array_equal(np.sort(np.concatenate([demo.locs["train"], demo.locs["val"]])),
                          np.sort(np.concatenate([demo.locs["trainval"], demo.locs["test_seen"]])))
    assert demo.class_names is not None and len(demo.class_names) == 40


def test_test_protocol(demo):
    s = make_split(demo, "test")
    assert (s.n_seen, s.n_unseen, s.n_classes, s.feat_dim, s.att_dim) == (30, 10, 40, 128, 16)
    assert s.train_x.shape[0] == demo.locs["trainval"].size
    assert s.seen_x.shape[0] == demo.locs["test_seen"].size
    assert s.unseen_x.shape[0] == demo.locs["test_unseen"].size
    assert s.train_y.min() >= 0 and s.train_y.max() < 30 and s.seen_y.max() < 30
    assert s.unseen_y.min() >= 30 and s.unseen_y.max() < 40
    assert torch.equal(s.att, torch.from_numpy(demo.att[np.r_[s.seen_classes.numpy(), s.unseen_classes.numpy()]]))
    assert torch.equal(s.seen_classes[s.train_y], torch.from_numpy(demo.labels[demo.locs["trainval"]]))
    assert s.summary() == {"dataset": "DEMO", "protocol": "test", "n_train": s.train_x.shape[0],
                           "n_seen_eval": s.seen_x.shape[0], "n_unseen_eval": s.unseen_x.shape[0],
                           "n_seen": 30, "n_unseen": 10, "n_classes": 40, "feat_dim": 128, "att_dim": 16}


def test_validation_protocol(demo):
    s = make_split(demo, "validation")
    assert (s.n_seen, s.n_unseen) == (22, 8)
    rows = validation_rows(demo)
    tv = demo.locs["trainval"]
    for a, b in (("train", "seen"), ("train", "unseen"), ("seen", "unseen")):
        assert np.intersect1d(rows[a], rows[b]).size == 0
    assert np.array_equal(np.sort(np.concatenate(list(rows.values()))), np.sort(tv))  # all of trainval, nothing else
    seen_cls, unseen_cls = s.seen_classes.numpy(), s.unseen_classes.numpy()
    assert np.intersect1d(seen_cls, demo.labels[demo.locs["test_unseen"]]).size == 0
    assert np.intersect1d(unseen_cls, demo.labels[demo.locs["test_unseen"]]).size == 0
    assert set(np.unique(demo.labels[rows["seen"]])) == set(seen_cls)  # every train class has held-out images
    frac = rows["seen"].size / (rows["seen"].size + rows["train"].size)
    assert 0.15 < frac < 0.25
    assert s.train_y.max() < 22 and s.seen_y.max() < 22 and s.unseen_y.min() == 22 and s.unseen_y.max() == 29


def test_a_tiny_hold_out_share_still_keeps_one_image_per_class(demo, monkeypatch):
    from zsl_search.data import _protocol

    monkeypatch.setattr(_protocol, "VAL_SEEN_FRACTION", 0.01)
    s = make_split(demo, "validation")
    assert torch.unique(s.seen_y).numel() == s.n_seen  # at least one held-out image per class


def test_bad_arguments(demo):
    with pytest.raises(ConfigError):
        make_split(demo, "bogus")
    with pytest.raises(ConfigError):
        make_split(demo, "test", preprocess="zscore")
    with pytest.raises(ConfigError):
        synthesize(REPO_ROOT / "never-written", preset="nope")


def test_v5_and_v73_roundtrip(tmp_path, demo):
    d73 = synthesize(tmp_path / "v73", seed=0, mat_format="v7.3")
    ds73 = load_xlsa(d73)
    assert open(d73 / "res101.mat", "rb").read(10) == b"MATLAB 7.3"
    assert np.array_equal(ds73.features, demo.features) and np.array_equal(ds73.labels, demo.labels)
    assert np.array_equal(ds73.att, demo.att) and ds73.class_names == demo.class_names
    assert all(np.array_equal(ds73.locs[k], demo.locs[k]) for k in demo.locs)
    # the low-level writer keeps MATLAB orientation both ways
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    for fmt in ("v5", "v7.3"):
        write_mat(tmp_path / f"x_{fmt}.mat", {"a": arr, "n": ["ab", "c"]}, mat_format=fmt)
        back = read_mat(tmp_path / f"x_{fmt}.mat")
        assert back["a"].shape == (2, 3) and np.array_equal(back["a"], arr)
        assert cellstr_to_list(back["n"]) == ["ab", "c"]
        only = read_mat(tmp_path / f"x_{fmt}.mat", keys=("a", "missing"))  # what load_xlsa asks of res101.mat
        assert list(only) == ["a"] and np.array_equal(only["a"], arr)


def test_split_arrays_roundtrip_zero_copy(demo):
    s = make_split(demo, "validation")
    meta, arrays = s.to_arrays()
    for a in arrays.values():
        a.flags.writeable = False  # as Ray's object store hands them out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = Split.from_arrays(meta, arrays)
    assert _same_split(s, r)
    assert all(getattr(r, n).data_ptr() == getattr(s, n).data_ptr() for n in TENSORS)


# ---------------------------------------------------------------- preprocessing

def test_minmax_fitted_on_train_only(demo):
    s = make_split(demo, "test", preprocess="minmax")
    raw = demo.features[demo.locs["trainval"]]
    varying = raw.max(0) > raw.min(0)
    assert torch.all(s.train_x.min(0).values[varying] == 0) and torch.all(s.train_x.max(0).values[varying] == 1)
    lo, rng = raw.min(0), np.where(varying, raw.max(0) - raw.min(0), 1)
    expect = (demo.features[demo.locs["test_seen"]] - lo) / rng
    np.testing.assert_allclose(s.seen_x.numpy(), expect, rtol=1e-6, atol=1e-6)  # no refit, no clipping
    v = make_split(demo, "validation")
    assert torch.all(v.train_x.min(0).values[v.train_x.max(0).values > 0] == 0)
    assert v.train_x.max() == 1 and v.seen_x.max() != 1  # statistics come from train_x only


def test_l2_and_none_preprocessing(demo):
    s = make_split(demo, "test", preprocess="l2")
    assert torch.allclose(s.train_x.norm(dim=1), torch.ones(1), atol=1e-5)
    n = make_split(demo, "test", preprocess="none")
    assert np.array_equal(n.unseen_x.numpy(), demo.features[demo.locs["test_unseen"]])


# ---------------------------------------------------------------- determinism

def test_seeded_determinism(tmp_path, demo_dir, demo):
    again = synthesize(tmp_path / "again", seed=0)
    other = synthesize(tmp_path / "other", seed=1)
    a, b, c = (read_mat(d / "res101.mat") for d in (demo_dir, again, other))
    assert a["features"].tobytes() == b["features"].tobytes() and a["labels"].tobytes() == b["labels"].tobytes()
    assert read_mat(demo_dir / "att_splits.mat")["att"].tobytes() == read_mat(again / "att_splits.mat")["att"].tobytes()
    assert a["features"].tobytes() != c["features"].tobytes()
    assert _same_split(make_split(demo, "validation", seed=3), make_split(demo, "validation", seed=3))
    assert not torch.equal(make_split(demo, "validation", seed=3).seen_x, make_split(demo, "validation", seed=4).seen_x)


def test_synthetic_classes_are_learnable(demo):
    f, y = demo.features, demo.labels
    for train, evl in (("trainval", "test_seen"), ("test_unseen", "test_unseen")):
        cls = np.unique(y[demo.locs[train]])
        means = np.stack([f[demo.locs[train]][y[demo.locs[train]] == c].mean(0) for c in cls])  # (C, D)
        x = f[demo.locs[evl]]
        pred = cls[((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)]
        acc = (pred == y[demo.locs[evl]]).mean()
        assert 3 / cls.size < acc < 0.99


def test_synthesize_refuses_a_real_att_splits_and_a_file(tmp_path):
    (tmp_path / "att_splits.mat").write_bytes(b"real attributes")  # an xlsa17 folder without features
    with pytest.raises(DataError, match="att_splits.mat"):
        synthesize(tmp_path)
    assert (tmp_path / "att_splits.mat").read_bytes() == b"real attributes"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        synthesize(tmp_path / "afile")


def test_synthesize_refuses_real_res101(tmp_path):
    (tmp_path / "res101.mat").write_bytes(b"real data")
    with pytest.raises(DataError, match="res101.mat"):
        synthesize(tmp_path)
    assert (tmp_path / "res101.mat").read_bytes() == b"real data"


# ---------------------------------------------------------------- the validation protocol never reads test rows

def test_validation_never_reads_test_rows(tmp_path, demo_dir, demo):
    rows = validation_rows(demo, seed=0)
    test_rows = np.concatenate([demo.locs["test_seen"], demo.locs["test_unseen"]])
    for r in rows.values():
        assert np.intersect1d(r, test_rows).size == 0 and np.isin(r, demo.locs["trainval"]).all()
    # swap every test feature for different random values: the validation split must not change a bit
    poisoned = tmp_path / "DEMO"
    poisoned.mkdir()
    shutil.copy(demo_dir / "att_splits.mat", poisoned / "att_splits.mat")
    res = read_mat(demo_dir / "res101.mat")
    feats = res["features"].copy()  # (D, N)
    rng = np.random.default_rng(123)
    feats[:, test_rows] = rng.uniform(-5, 50, (feats.shape[0], test_rows.size)).astype(np.float32)
    write_mat(poisoned / "res101.mat", {"features": feats, "labels": res["labels"]})
    bad = load_xlsa(poisoned)
    assert not np.array_equal(bad.features[test_rows], demo.features[test_rows])
    for pre in ("minmax", "l2", "none"):
        good_split, bad_split = (make_split(d, "validation", preprocess=pre) for d in (demo, bad))
        assert _same_split(good_split, bad_split)
    assert not _same_split(make_split(demo, "test"), make_split(bad, "test"))


# ---------------------------------------------------------------- DataError cases

def _tiny() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, 7), 5).astype(np.float64)[:, None]  # 6 classes x 5 images, (30, 1)
    res = {"features": rng.random((4, 30)).astype(np.float32), "labels": labels}
    idx = np.arange(1, 31).reshape(6, 5)
    att = {"att": rng.random((3, 6)),
           "trainval_loc": idx[:4, :4].reshape(-1, 1).astype(np.uint16),
           "test_seen_loc": idx[:4, 4:].reshape(-1, 1).astype(np.uint16),
           "test_unseen_loc": idx[4:].reshape(-1, 1).astype(np.uint16),
           "train_loc": idx[:3].reshape(-1, 1).astype(np.uint16),
           "val_loc": idx[3:4].reshape(-1, 1).astype(np.uint16)}
    return res, att


def _write_tiny(root: Path, res: dict, att: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "res101.mat", res)
    scipy.io.savemat(root / "att_splits.mat", att)
    return root


def test_tiny_is_valid_and_accepts_row_vectors(tmp_path):
    res, att = _tiny()
    ds = load_xlsa(_write_tiny(tmp_path / "a", res, att))
    s, v = make_split(ds, "test"), make_split(ds, "validation")
    assert (s.n_seen, s.n_unseen, v.n_seen, v.n_unseen) == (4, 2, 3, 1)
    res["labels"] = res["labels"].T.astype(np.uint16)  # (1, N) uint16
    att = {k: (v.T.astype(np.float64) if k.endswith("_loc") else v) for k, v in att.items()}  # (1, n) double
    ds2 = load_xlsa(_write_tiny(tmp_path / "b", res, att))
    assert np.array_equal(ds2.labels, ds.labels) and all(np.array_equal(ds2.locs[k], ds.locs[k]) for k in ds.locs)


def _mutate(case: str, res: dict, att: dict) -> tuple[str, str]:
    """Apply one corruption; return (file name, key) the message must name."""
    if case.startswith("drop:"):
        key = case[5:]
        (res if key in ("features", "labels") else att).pop(key)
        return ("res101.mat" if key in ("features", "labels") else "att_splits.mat"), key
    if case == "shape":
        res["features"] = np.hstack([res["features"], res["features"][:, :1]])
        return "res101.mat", "features"
    if case == "loc_zero":
        att["trainval_loc"][0, 0] = 0
        return "att_splits.mat", "trainval_loc"
    if case == "loc_high":
        att["test_unseen_loc"] = att["test_unseen_loc"].astype(np.float64)
        att["test_unseen_loc"][-1, 0] = 31
        return "att_splits.mat", "test_unseen_loc"
    if case == "label_zero":
        res["labels"][0, 0] = 0
        return "res101.mat", "labels"
    if case == "label_high":
        res["labels"][-1, 0] = 7
        return "res101.mat", "labels"
    if case == "nan":
        res["features"][2, 7] = np.nan
        return "res101.mat", "features"
    if case == "inf":
        res["features"][1, 29] = np.inf
        return "res101.mat", "features"
    if case == "duplicate":
        att["test_seen_loc"][1, 0] = att["test_seen_loc"][0, 0]
        return "att_splits.mat", "test_seen_loc"
    if case == "overlap":
        att["test_unseen_loc"][0, 0] = att["trainval_loc"][0, 0]
        return "att_splits.mat", "test_unseen_loc"
    if case == "half_val":
        att.pop("val_loc")
        return "att_splits.mat", "val_loc"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "drop:features", "drop:labels", "drop:att", "drop:trainval_loc", "drop:test_seen_loc", "drop:test_unseen_loc",
    "shape", "loc_zero", "loc_high", "label_zero", "label_high", "nan", "inf", "duplicate", "overlap", "half_val"])
def test_data_errors(tmp_path, case):
    res, att = _tiny()
    fname, key = _mutate(case, res, att)
    root = _write_tiny(tmp_path / "bad", res, att)
    with pytest.raises(DataError) as ei:
        load_xlsa(root)
    msg = str(ei.value)
    assert "\n" not in msg and fname in msg and key in msg, msg


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="nope"):
        load_xlsa(tmp_path / "nope")
    res, att = _tiny()
    root = _write_tiny(tmp_path / "d", res, att)
    (root / "att_splits.mat").unlink()
    with pytest.raises(DataError, match="att_splits.mat"):
        load_xlsa(root)
    root = _write_tiny(tmp_path / "e", res, att)
    (root / "res101.mat").write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(DataError, match="res101.mat") as ei:
        load_xlsa(root)
    assert "\n" not in str(ei.value)
    with pytest.raises(DataError, match="sent_splits.mat"):
        load_xlsa(root, semantics="sent_splits.mat")


def test_validation_needs_train_val_locs(tmp_path):
    res, att = _tiny()
    att.pop("train_loc")
    att.pop("val_loc")
    ds = load_xlsa(_write_tiny(tmp_path / "x", res, att))
    make_split(ds, "test")
    with pytest.raises(DataError, match="protocol='test'") as ei:
        make_split(ds, "validation")
    assert "train_loc" in str(ei.value) and "att_splits.mat" in str(ei.value)


def test_a_train_class_too_small_to_hold_out_is_an_error_not_a_silent_drop(tmp_path):
    """With one trainval image, class 1 would have no validation-seen image and drop out of S."""
    res, att = _tiny()
    tv = att["trainval_loc"][:, 0]
    att["trainval_loc"] = tv[~np.isin(tv, [2, 3, 4])][:, None]
    att["test_seen_loc"] = np.concatenate([att["test_seen_loc"][:, 0], [2, 3, 4]]).astype(np.uint16)[:, None]
    ds = load_xlsa(_write_tiny(tmp_path / "x", res, att))
    make_split(ds, "test")
    with pytest.raises(DataError, match="train class 1 has 1 trainval image") as ei:
        make_split(ds, "validation")
    assert "\n" not in str(ei.value)


def test_validation_class_folds_hold_out_disjoint_classes_from_trainval_only(demo):
    """Fold 0 is the dataset's own train/val split; fold k holds out another group of as many
    train classes (the val classes train instead); every fold reads trainval rows only."""
    from zsl_search.data import max_folds

    assert max_folds(demo) == 1 + 22 // 8
    folds = [make_split(demo, "validation", fold=k) for k in range(max_folds(demo))]
    assert _same_split(folds[0], make_split(demo, "validation"))
    unseen = [set(f.unseen_classes.tolist()) for f in folds]
    assert all(len(u) == 8 for u in unseen)
    assert all(not (a & b) for i, a in enumerate(unseen) for b in unseen[i + 1:])  # disjoint
    for f in folds:
        assert not set(f.seen_classes.tolist()) & set(f.unseen_classes.tolist())
        assert f.n_seen == 22 and set(f.seen_classes.tolist()) | set(f.unseen_classes.tolist()) == unseen[0] | set(
            folds[0].seen_classes.tolist())
    with pytest.raises(ConfigError, match="use at most 3 folds"):
        make_split(demo, "validation", fold=3)


def test_a_dataset_carries_its_identity(tmp_path):
    """`data synth` writes zsl-dataset.json, so a demo set under any directory name keeps the demo
    defaults; load_xlsa's arguments override it; a broken identity file is one clear line."""
    from zsl_search.data import IDENTITY_FILE, write_identity

    root = synthesize(tmp_path / "mydata", preset="demo", seed=0)
    ds = load_xlsa(root)
    assert (ds.name, ds.defaults) == ("MYDATA", "DEMO")
    assert make_split(ds, "validation").defaults_name == "DEMO"
    assert load_xlsa(root, defaults="pf60", name="faces").defaults == "PF60"
    res, att = _tiny()
    plain = load_xlsa(_write_tiny(tmp_path / "cub", res, att))
    assert (plain.name, plain.defaults) == ("CUB", "CUB")  # no identity file: the directory name
    write_identity(plain.root, name="birds", defaults="cub")
    assert (load_xlsa(plain.root).name, load_xlsa(plain.root).defaults) == ("BIRDS", "CUB")
    (plain.root / IDENTITY_FILE).write_text('\ufeff{"name": "birds"}', encoding="utf-8")  # a BOM, as Notepad writes
    assert load_xlsa(plain.root).name == "BIRDS"
    (plain.root / IDENTITY_FILE).write_text("{not json")
    with pytest.raises(DataError, match=IDENTITY_FILE):
        load_xlsa(plain.root)


# ---------------------------------------------------------------- real xlsa17 files

@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_like_real_dataset(tmp_path, name):
    att_file = _real_att(name)
    ds = load_xlsa(synthesize(tmp_path / name, preset="like", like=name, att_file=att_file, feat_dim=8, seed=0))
    (n_tv, n_ts, n_tu), (n_seen, n_unseen), a_dim = PUBLISHED[name]
    s = make_split(ds, "test")
    assert (s.train_x.shape[0], s.seen_x.shape[0], s.unseen_x.shape[0]) == (n_tv, n_ts, n_tu)
    assert (s.n_seen, s.n_unseen, s.att_dim, s.feat_dim) == (n_seen, n_unseen, a_dim, 8)
    real = scipy.io.loadmat(att_file)
    assert np.allclose(ds.att, real["att"].T, atol=1e-6)
    assert all(np.array_equal(ds.locs[k], np.sort(real[f"{k}_loc"].ravel() - 1)) for k in ds.locs)
    v = make_split(ds, "validation")
    assert (v.n_seen, v.n_unseen) == (KNOWN_DATASETS[name]["train"], KNOWN_DATASETS[name]["val"])
    assert v.train_x.shape[0] + v.seen_x.shape[0] + v.unseen_x.shape[0] == n_tv


def test_like_v73_and_cub_sentences(tmp_path):
    att_file = _real_att("CUB")
    sent = _real_att("CUB", "sent_splits.mat")
    root = synthesize(tmp_path / "CUB", preset="like", like="CUB", att_file=att_file, feat_dim=8, mat_format="v7.3")
    assert open(root / "att_splits.mat", "rb").read(10) == b"MATLAB 7.3"
    ds = load_xlsa(root)
    assert ds.att.shape == (200, 312) and ds.features.shape == (11788, 8)
    (root / "sent_splits.mat").symlink_to(sent)  # read in place, never copied
    ds_sent = load_xlsa(root, semantics="sent_splits.mat")
    assert ds_sent.semantics == "sent_splits.mat" and ds_sent.att.shape == (200, 1024)
    s = make_split(ds_sent, "test")
    assert (s.train_x.shape[0], s.seen_x.shape[0], s.unseen_x.shape[0], s.att_dim) == (7057, 1764, 2967, 1024)
    assert (s.n_seen, s.n_unseen) == (150, 50)


def test_like_scaled_and_without_train_val(tmp_path):
    ds = load_xlsa(synthesize(tmp_path / "AWA1", preset="like", like="AWA1", att_file=_real_att("AWA1"),
                              feat_dim=8, scale=0.05))
    s = make_split(ds, "test")
    assert (s.n_seen, s.n_unseen) == (40, 10)
    assert torch.unique(s.seen_y).numel() == 40  # every seen class keeps test_seen images
    assert abs(s.train_x.shape[0] - 0.05 * 19832) < 40
    apy = load_xlsa(synthesize(tmp_path / "APY", preset="like", like="APY", att_file=_real_att("APY"), feat_dim=8,
                               scale=0.2))
    t = make_split(apy, "test")
    assert (t.n_seen, t.n_unseen) == (20, 12) and "train" not in apy.locs
    with pytest.raises(DataError, match="protocol='test'"):
        make_split(apy, "validation")
    assert PROTOCOLS == ("validation", "test")


# ---------------------------------------------------------------- bad input, one line each

@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_synth_refuses_a_seed_outside_32_bits(tmp_path, capsys, seed):
    from zsl_search.cli import main

    assert main(["data", "synth", str(tmp_path / "s"), "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert err == f"zsl-search: error: --seed {seed}: must be an integer from 0 to 4294967295 (2**32 - 1); " \
                  "pass another seed\n"
    assert not (tmp_path / "s").exists()


def test_synth_into_a_file_names_the_output_directory(tmp_path, capsys):
    from zsl_search.cli import main

    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out in (afile, afile / "sub"):
        assert main(["data", "synth", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"zsl-search: error: {out}: ") and "choose another output directory" in err
        assert "out_dir" not in err and err.count("\n") == 1
    assert afile.read_text() == "keep"


def test_an_unknown_defaults_name_is_refused_wherever_it_is_given(tmp_path, capsys):
    """A `defaults` no variant has would train silently with the reference defaults while
    `data info` shows the name: zsl-dataset.json, `data synth --like` and `variants --dataset`
    refuse it in one line naming the file or the flag."""
    from zsl_search.cli import main
    from zsl_search.data import IDENTITY_FILE, write_identity

    root = synthesize(tmp_path / "mydata", preset="demo", seed=0)
    (root / IDENTITY_FILE).write_text('{"name": "MYDATA", "defaults": "NOPE"}')
    with pytest.raises(DataError, match=rf"{IDENTITY_FILE}: field 'defaults': no variant has defaults called 'NOPE'"):
        load_xlsa(root)
    assert main(["data", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(root / IDENTITY_FILE) in err and "'defaults'" in err and err.count("\n") == 1
    (root / IDENTITY_FILE).write_text('{"name": "MYDATA", "defaults": "mydata"}')  # by the name: the fallback
    assert load_xlsa(root).defaults == "MYDATA"
    with pytest.raises(ConfigError, match="no variant has defaults called 'NOPE'"):
        write_identity(root, name="mydata", defaults="NOPE")
    write_identity(root, name="faces")  # no defaults: the name decides, and the file says nothing else
    assert (root / IDENTITY_FILE).read_text() == '{\n "name": "FACES"\n}\n' and load_xlsa(root).defaults == "FACES"

    like_foo = ["data", "synth", str(tmp_path / "s4"), "--like", "FOO", "--att-file", str(root / "att_splits.mat")]
    assert main(like_foo) == 2
    assert "--like 'FOO': not a dataset zsl-search knows; use one of APY, AWA1" in capsys.readouterr().err
    assert not (tmp_path / "s4").exists()
    assert main(["variants", "fclswgan", "--dataset", "CUBB"]) == 2
    assert "--dataset: no variant has defaults called 'CUBB'" in capsys.readouterr().err
    assert main(["variants", "fclswgan", "--dataset", "cub"]) == 0
    assert "fclswgan" in capsys.readouterr().out
    # Without a name: what the dataset's defaults change, per variant (was silently the plain list).
    from zsl_search.models import get_variant
    assert main(["variants", "--dataset", "cub"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fcls = lines[lines.index(next(line for line in lines if line.startswith("fclswgan"))) + 1].strip()
    changed = {k: v for k, v in get_variant("fclswgan").defaults("CUB").items() if v != get_variant("fclswgan").defaults()[k]}
    assert changed and fcls == "CUB: " + ", ".join(f"{k}={v!r}" for k, v in changed.items())
    assert lines[lines.index(next(line for line in lines if line.startswith("cgan"))) + 1].strip() == "CUB: the reference defaults"
    assert main(["variants", "--dataset", "apy"]) == 0  # a benchmark without defaults of its own: the reference ones
    from zsl_search.models import variant_names  # tests may have registered more than the five

    assert capsys.readouterr().out.count("APY: the reference defaults") == len(variant_names())


def test_like_a_dataset_without_defaults_of_its_own_names_the_reference_ones(tmp_path, capsys):
    from zsl_search.data import read_identity

    idx = np.arange(1, 65).reshape(32, 2)  # APY's 20 seen + 12 unseen classes, 2 images each
    apy = {"att": np.random.default_rng(0).random((4, 32)), "trainval_loc": idx[:20, :1].astype(np.uint16),
           "test_seen_loc": idx[:20, 1:].astype(np.uint16),
           "test_unseen_loc": idx[20:].reshape(-1, 1).astype(np.uint16)}
    scipy.io.savemat(tmp_path / "apy.mat", apy)
    root = synthesize(tmp_path / "apy-like", preset="like", like="APY", att_file=tmp_path / "apy.mat", feat_dim=8)
    assert read_identity(root)["defaults"] == "REFERENCE"  # a known layout, but no variant has APY defaults
    # `data info` says what that means for each variant, in the words `train` and `search run` use.
    from zsl_search.cli import main
    from zsl_search.models import variant_names

    assert main(["data", "info", str(root)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(f"; defaults: reference ({', '.join(variant_names())})")
    root = synthesize(tmp_path / "faces", preset="like", like="pf60", att_file=tmp_path / "apy.mat", feat_dim=8)
    assert load_xlsa(root).defaults == "PF60"  # a defaults name with no published layout: generic splits


def test_a_feature_file_that_is_a_directory_is_called_one(tmp_path, capsys):
    from zsl_search.cli import main

    res, att = _tiny()
    root = _write_tiny(tmp_path / "d", res, att)
    (root / "res101.mat").unlink()
    (root / "res101.mat").mkdir()
    assert main(["data", "info", str(root)]) == 2
    assert capsys.readouterr().err == (f"zsl-search: error: {root / 'res101.mat'}: is a directory, not a file; "
                                       "put the xlsa17 file there or run `zsl-search data synth`\n")


def test_cli_synth_names_every_file_it_wrote(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    out = tmp_path / "syn"
    assert main(["data", "synth", str(out), "--scale", "0.2"]) == 0
    said = capsys.readouterr().out
    written = sorted(p.name for p in out.iterdir())
    assert written == ["att_splits.mat", "res101.mat", "synth.json", "zsl-dataset.json"]
    assert said.startswith(f"wrote {out}/: ") and all(name in said for name in written)

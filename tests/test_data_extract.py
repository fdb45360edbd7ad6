"""`zsl-search data extract` and `data semantics`: images made on the fly with PIL, a small
torchvision model with random weights (no network), real Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml

from zsl_search.cli import main
from zsl_search.data import (ExtractSettings, build_semantics, describe_dataset, extract, list_images, load_xlsa,
                             read_mat)
from zsl_search.data._images import backbone, decode, preprocess
from zsl_search.errors import ConfigError, DataError

# Small and fast: 40 px images, cut to 32 px for mobilenet_v3_small; 4-image batches, 8-image shards.
SETTINGS = ExtractSettings(model="mobilenet_v3_small", weights="none", resize=40, crop=32, batch_size=4, shard_size=8)
CLASSES = ["ant", "bee", "cat", "dog", "eel"]
CORRUPT = {"bee/truncated.jpg": "truncated", "cat/notes.jpg": "not an image", "dog/empty.png": "empty file",
           "gnu/only.jpg": "unreadable image data"}  # gnu: a class whose only file is unreadable


def _make_images(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        colour = rng.integers(0, 256, 3)
        for i in range(6):  # JPEG, PNG and BMP (the last decoded by Pillow), odd sizes
            pixels = np.clip(colour + rng.normal(0, 25, (30 + 3 * i, 44 - i, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.{('jpg', 'png', 'bmp')[i % 3]}")
    (root / "bee/truncated.jpg").write_bytes((root / "bee/00.jpg").read_bytes()[:200])
    (root / "cat/notes.jpg").write_text("not an image")
    (root / "dog/empty.png").write_bytes(b"")
    (root / "gnu").mkdir()
    (root / "gnu/only.jpg").write_text("GIF89a, or so it says")
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_images(tmp_path_factory.mktemp("images") / "pets")


@pytest.fixture(scope="module")
def extracted(ray_local, images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("extracted") / "PETS"
    return out, extract(images, out, settings=SETTINGS, actors=2, threads=1)


def _mat(path: Path) -> dict:
    m = scipy.io.loadmat(path)
    return {"features": m["features"], "labels": m["labels"],
            "image_files": [str(np.asarray(f).ravel()[0]) for f in m["image_files"].ravel()]}


def test_extract_writes_the_xlsa17_layout_and_reports_corrupt_files(extracted, images: Path) -> None:
    out, report = extracted
    mat = _mat(out / "res101.mat")  # scipy reads it as it reads the xlsa17 release
    n_good = 6 * len(CLASSES)
    assert mat["features"].dtype == np.float32 and mat["features"].shape == (1024, n_good)  # (D, N)
    assert mat["labels"].shape == (n_good, 1)
    ours = read_mat(out / "res101.mat")  # and as the project's own reader does
    assert np.array_equal(ours["features"], mat["features"]) and list(ours["image_files"]) == mat["image_files"]
    classes = (out / "classes.txt").read_text().split()
    assert classes == CLASSES and report["dropped_classes"] == ["gnu"]  # no readable image: no class
    # 1-based labels in folder order; each file's label is its folder's class
    assert [classes[int(y) - 1] for y in mat["labels"].ravel()] == [f.split("/")[0] for f in mat["image_files"]]
    assert mat["image_files"][:2] == ["ant/00.jpg", "ant/01.png"]
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == set(CORRUPT)
    for path, words in CORRUPT.items():
        assert words in skipped[path].lower(), skipped[path]
    saved = json.loads((out / "extract-report.json").read_text())
    assert saved["extracted"] == n_good and saved["images"] == n_good + len(CORRUPT)
    assert saved["skipped"] == report["skipped"]
    assert not (out / ".extract").exists()  # the shards go once the file is written

    # The features are the backbone's on the preprocessed image, not just any numbers.
    net = backbone(SETTINGS.model, SETTINGS.weights, seed=SETTINGS.seed)
    for col in (0, 7, n_good - 1):
        x = preprocess(decode((images / mat["image_files"][col]).read_bytes()), resize=40, crop=32)
        with torch.inference_mode():
            expected = net(x[None]).numpy()[0]
        np.testing.assert_allclose(mat["features"][:, col], expected, rtol=1e-4, atol=1e-5)


def test_an_interrupted_extraction_resumes_to_the_same_file(ray_local, extracted, images: Path, tmp_path: Path) -> None:
    full, _ = extracted
    out = tmp_path / "PETS"
    calls = []

    def stop_after_two_shards(done: int, total: int, seconds: float) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C (or a SIGTERM'd CLI) does mid-run

    with pytest.raises(KeyboardInterrupt):
        extract(images, out, settings=SETTINGS, actors=2, threads=1, progress=stop_after_two_shards)
    assert not (out / "res101.mat").exists()
    kept = sorted(p.name for p in (out / ".extract").glob("shard-*.npz"))
    assert len(kept) >= 2
    report = extract(images, out, settings=SETTINGS, actors=2, threads=1)
    assert report["resumed_shards"] == len(kept) and report["shards"] == 5  # 34 images / 8
    a, b = _mat(full / "res101.mat"), _mat(out / "res101.mat")
    assert np.array_equal(a["features"], b["features"])  # bit for bit
    assert np.array_equal(a["labels"], b["labels"]) and a["image_files"] == b["image_files"]
    # Done is done: the same command again does nothing; other settings are refused, not mixed in.
    assert extract(images, out, settings=SETTINGS, actors=2)["actors"] == 0
    with pytest.raises(DataError, match="--restart"):
        extract(images, out, settings=ExtractSettings(**{**SETTINGS.__dict__, "crop": 24}))


def test_extraction_on_a_two_node_cluster_equals_the_local_one(extracted, images: Path, tmp_path: Path) -> None:
    local, _ = extracted
    out = tmp_path / "PETS"
    driver = Path(__file__).with_name("_extract_cluster_driver.py")
    r = subprocess.run([sys.executable, str(driver), str(images), str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["nodes"] == 2 and report["actors"] == 2  # both worker nodes extracted shards
    a, b = _mat(local / "res101.mat"), _mat(out / "res101.mat")
    assert np.array_equal(a["features"], b["features"]) and a["image_files"] == b["image_files"]


def test_the_cli_prints_one_summary_line_and_redoes_nothing(ray_local, images: Path, tmp_path: Path, capsys) -> None:
    args = ["data", "extract", str(images), str(tmp_path / "PETS"), "--model", SETTINGS.model, "--weights", "none",
            "--resize", "40", "--crop", "32", "--batch-size", "4", "--shard-size", "32", "--actors", "1", "--quiet"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"extracted 30 of 34 images of 5 classes into {tmp_path / 'PETS' / 'res101.mat'} (1024-d")
    assert "skipped 4 unreadable file(s)" in out and "dropped: gnu" in out and "with 1 actor(s)" in out
    assert "extract:" not in err  # --quiet: no progress lines
    assert main(args) == 0
    assert "already extracted, nothing to do" in capsys.readouterr().out


def test_a_table_of_paths_lists_like_the_folders(images: Path, tmp_path: Path) -> None:
    folders = list_images(images)
    table = tmp_path / "list.tsv"
    rows = [f"{images / name}\t{name.split('/')[0]}" for name in folders.names]
    table.write_text("path\tclass\n" + "\n".join(rows) + "\n")
    listed = list_images(table)
    assert listed.paths == folders.paths and listed.labels == folders.labels and listed.classes == folders.classes


def test_table_errors_name_the_line_in_the_file(tmp_path: Path) -> None:
    """Blank lines and the header are skipped, but an error still names the line an editor shows."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    table = tmp_path / "list.csv"
    table.write_text("path,class\n\na.jpg,ant\n\na.jpg\n")
    with pytest.raises(DataError, match=r"list.csv: line 5 has 1 field\(s\) \['a.jpg'\]; expected path,class"):
        list_images(table)
    root = _features_only(tmp_path / "pets")
    att = tmp_path / "att.csv"
    att.write_text("class,a,b\n\nant,0,1\n\nbee,x,1\n")
    with pytest.raises(DataError, match=r"att.csv: line 5 \('bee'\) has a non-numeric attribute value"):
        build_semantics(root, table=att)
    att.write_text("class,a,b\n\nant,0,1\n,,\nant,1,1\n")
    with pytest.raises(DataError, match=r"class 'ant' has two rows \(lines 3 and 5\)"):
        build_semantics(root, table=att)
    table.write_text("path,class\na.jpg,ant\n\na.jpg,bee\n")  # one image under two labels
    with pytest.raises(DataError, match=r"list.csv: line 4 lists a.jpg again \(line 2, class 'ant'\); keep one row"):
        list_images(table)
    desc = tmp_path / "d.yaml"
    desc.write_text("\ufeffant: small\nbee: buzzing insect\nant: an insect\n")  # a BOM too, as Notepad writes
    with pytest.raises(DataError, match=r"d.yaml: class 'ant' has two descriptions \(lines 1 and 3\)"):
        build_semantics(root, text=desc)


@pytest.mark.parametrize("case", ["missing", "empty_folder", "empty_class", "loose_file", "table_missing_file",
                                  "table_short_row"])
def test_bad_image_sources_fail_in_one_line_before_any_work(case: str, tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    if case == "missing":
        src = tmp_path / "nowhere"
    elif case == "empty_class":
        (src / "a").mkdir()
        (src / "a" / "x.jpg").write_bytes(b"x")
        (src / "b").mkdir()
    elif case == "loose_file":
        (src / "a").mkdir()
        (src / "a" / "x.jpg").write_bytes(b"x")
        (src / "stray.jpg").write_bytes(b"x")
    elif case.startswith("table"):
        (src / "x.jpg").write_bytes(b"x")
        src = src / "list.csv"
        src.write_text("x.jpg,a\ny.jpg,b\n" if case == "table_missing_file" else "x.jpg,a\nx.jpg\n")
    out = tmp_path / "out"
    assert main(["data", "extract", str(src), str(out), "--weights", "none", "--model", "mobilenet_v3_small"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zsl-search: error: ") and "\n" not in err
    assert not out.exists()  # nothing was started


def test_backbone_weights_and_model_errors(tmp_path: Path) -> None:
    net = backbone("mobilenet_v3_small", "none", seed=1)
    assert isinstance(net.classifier[-1], torch.nn.Identity)  # cut before the ImageNet classifier
    full = tmp_path / "full.pth"
    import torchvision

    torch.manual_seed(3)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), full)  # a full model's state, as downloaded
    loaded = backbone("mobilenet_v3_small", str(full))
    assert not torch.equal(loaded.features[0][0].weight, net.features[0][0].weight)
    assert torch.equal(loaded.features[0][0].weight, torch.load(full)["features.0.0.weight"])
    with pytest.raises(ConfigError, match="does not fit"):
        backbone("resnet18", str(full))
    with pytest.raises(ConfigError, match="not a torchvision classification model"):
        backbone("resnet_nonexistent", "none")
    with pytest.raises(ConfigError, match="file not found"):
        backbone("resnet18", str(tmp_path / "nowhere.pth"))


def test_semantics_from_a_table_and_from_text_make_datasets_that_train(extracted, tmp_path: Path, capsys) -> None:
    src, _ = extracted
    out = tmp_path / "PETS"
    out.mkdir()
    for name in ("res101.mat", "classes.txt"):
        (out / name).write_bytes((src / name).read_bytes())
    table = tmp_path / "att.csv"
    rows = zip(CLASSES, [6, 6, 4, 4, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 1, 1, 1, 0], strict=True)
    table.write_text("class,legs,wings,fins,fur\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    summary = build_semantics(out, table=table, unseen=["eel"], val=["cat"], seed=0)
    assert summary["unseen"] == ["eel"] and summary["val"] == ["cat"] and summary["semantic_dim"] == 4
    att = scipy.io.loadmat(out / "att_splits.mat")
    assert att["att"].shape == (4, 5)
    np.testing.assert_allclose(np.linalg.norm(att["att"], axis=0), 1.0, rtol=1e-6)  # unit columns, as xlsa17
    ds = load_xlsa(out)  # the project's own loader validates it
    labels = ds.labels
    trainval, test_seen = ds.locs["trainval"], ds.locs["test_seen"]
    assert set(labels[ds.locs["test_unseen"]]) == {4} and not set(labels[trainval]) & {4}
    assert sorted(np.concatenate([ds.locs["train"], ds.locs["val"]])) == sorted(trainval)
    assert set(labels[ds.locs["val"]]) == {2}
    for c in range(4):  # a seeded 20% of every seen class (6 images: 1) is test_seen
        assert (labels[test_seen] == c).sum() == 1 and (labels[trainval] == c).sum() == 5
    assert describe_dataset(ds)["classes"] == 5
    _info_then_train(out, capsys)

    text = tmp_path / "desc.yaml"
    text.write_text(yaml.safe_dump({
        "ant": "A small insect with six legs that lives in colonies underground.",
        "bee": "A flying insect with wings and six legs that makes honey.",
        "cat": "A small furry mammal with four legs, whiskers and a tail.",
        "dog": "A loyal furry mammal with four legs that barks.",
        "eel": "A long fish with fins that lives in rivers and the sea.",
    }))
    assert main(["data", "semantics", str(out), "--text", str(text), "--unseen", "eel", "--val", "cat"]) == 0
    assert "5 classes" in capsys.readouterr().out
    _info_then_train(out, capsys)


def _info_then_train(root: Path, capsys) -> None:
    """`data info` accepts the dataset and `zsl-search train` trains on it (one tiny epoch)."""
    assert main(["data", "info", str(root)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["train", "--data", str(root), "--variant", "fclswgan", "--epochs", "1", "--set", "hidden=32",
                 "--set", "syn_num=5", "--set", "cls_pretrain_epochs=1", "--set", "cls_epochs=1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["dataset"] == "PETS" and 0.0 <= result["H"] <= 1.0 and result["epochs"] == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"unseen": ["whale"]}, "--unseen: 'whale' is not a class"),
    ({"unseen": ["eel"], "val": ["eel"]}, "already unseen"),
    ({"unseen_fraction": 0.99}, "too few"),
    ({"unseen": CLASSES}, r"^--unseen leaves 0 of \d+ classes seen; a split needs at least 2"),
    ({"unseen": CLASSES[1:]}, r"^--unseen leaves 1 of \d+ classes seen"),
    ({}, "exactly one of"),
])
def test_semantics_rejects_bad_class_choices(extracted, tmp_path: Path, kwargs: dict, match: str) -> None:
    src, _ = extracted
    table = tmp_path / "att.csv"
    table.write_text("class,a\n" + "".join(f"{c},{i + 1}\n" for i, c in enumerate(CLASSES)))
    if kwargs:
        kwargs = {"table": table, **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_semantics(src, **kwargs)
    assert not (src / "att_splits.mat").exists()


def test_semantics_names_a_class_without_semantics(extracted, tmp_path: Path) -> None:
    src, _ = extracted
    table = tmp_path / "att.csv"
    table.write_text("class,a\nant,1\nbee,2\n")
    with pytest.raises(DataError, match="no row for 3 class"):
        build_semantics(src, table=table)
    text = tmp_path / "d.json"
    text.write_text(json.dumps({c: "the and of" if c == "ant" else f"a {c} thing" for c in CLASSES}))
    with pytest.raises(DataError, match="'ant' has an all-zero semantic vector"):
        build_semantics(src, text=text)


# ---------------------------------------------------------------- bad input, one line each

def _features_only(root: Path) -> Path:
    """What `data extract` leaves for `data semantics` (labels and class names), without Ray."""
    root.mkdir(parents=True)
    labels = np.repeat(np.arange(1, len(CLASSES) + 1), 6).astype(np.float64)[:, None]
    scipy.io.savemat(root / "res101.mat", {"features": np.ones((4, labels.size), np.float32), "labels": labels})
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("class,a,b\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_extract_into_a_file_is_one_line_before_any_work(images: Path, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out in (afile, afile / "sub"):
        argv = ["data", "extract", str(images), str(out), "--weights", "none", "--model", "mobilenet_v3_small"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"zsl-search: error: {out}: ") and "is not a directory" in err and err.count("\n") == 1
    assert afile.read_text() == "keep"


def test_extract_refuses_a_seed_out_of_range_before_any_work(images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "feats"
    assert main(["data", "extract", str(images), str(out), "--weights", "none", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "zsl-search: error: --seed -1: must be an integer from 0 to 4294967295 (2**32 - 1); pass another seed\n"
    assert not out.exists()


@pytest.mark.parametrize(("argv", "match"), [
    (["--seed", "-1"], "--seed -1: must be an integer from 0 to 4294967295"),
    (["--seed", str(2**32)], f"--seed {2**32}: must be an integer from 0 to 4294967295"),
    (["--unseen", "eel", "--unseen-fraction", "0.3"], "--unseen and --unseen-fraction both given"),
    (["--val", "cat", "--val-fraction", "0.3"], "--val and --val-fraction both given"),
    (["--defaults", "NOPE"], "--defaults: no variant has defaults called 'NOPE'"),
])
def test_semantics_refuses_bad_flags_before_writing(tmp_path: Path, capsys, argv: list[str], match: str) -> None:
    root = _features_only(tmp_path / "pets")
    table = _table(tmp_path / "att.csv", [f"{c},{i},1" for i, c in enumerate(CLASSES)])
    assert main(["data", "semantics", str(root), "--table", str(table), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zsl-search: error: ") and match in err and err.count("\n") == 1
    assert sorted(p.name for p in root.iterdir()) == ["classes.txt", "res101.mat"]  # nothing written


@pytest.mark.parametrize("second", ["1,0", "0,0"])
def test_semantics_names_a_class_with_two_rows(tmp_path: Path, second: str) -> None:
    """Neither the last row winning silently nor an all-zero complaint: the duplicate, named."""
    root = _features_only(tmp_path / "pets")
    table = _table(tmp_path / "att.csv", ["ant,0,1", "bee,1,1", f"ant,{second}", "cat,1,2", "dog,2,1", "eel,3,1"])
    with pytest.raises(DataError, match=r"att.csv: class 'ant' has two rows \(lines 2 and 4\); keep one of them"):
        build_semantics(root, table=table)
    assert not (root / "att_splits.mat").exists()


def test_semantics_without_defaults_follows_the_name_and_with_them_keeps_them(tmp_path: Path) -> None:
    root = _features_only(tmp_path / "pets")
    table = _table(tmp_path / "att.csv", [f"{c},{i},1" for i, c in enumerate(CLASSES)])
    build_semantics(root, table=table, unseen=["eel"], seed=0)
    assert (load_xlsa(root).name, load_xlsa(root).defaults) == ("PETS", "PETS")
    build_semantics(root, table=table, unseen=["eel"], seed=0, defaults="pf60")
    assert load_xlsa(root).defaults == "PF60"


def test_ctrl_c_during_extract_says_the_same_command_continues(images: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import zsl_search.data
    from zsl_search.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zsl_search.data, "extract", interrupted)
    assert main(["data", "extract", str(images), str(tmp_path / "out"), "--quiet"]) == 130
    assert capsys.readouterr().err == ("zsl-search: interrupted; run the same command again to continue where it "
                                       "stopped\n")


def test_semantics_says_when_a_single_class_makes_a_score_trivial(tmp_path: Path, capsys) -> None:
    root = _features_only(tmp_path / "pets")
    table = _table(tmp_path / "att.csv", [f"{c},{i},1" for i, c in enumerate(CLASSES)])
    build_semantics(root, table=table, unseen=["dog", "eel"], val=["bee", "cat"])  # 1 train class: fine
    assert capsys.readouterr().err == ""
    build_semantics(root, table=table, unseen=["eel"], val=["dog", "cat"])
    assert capsys.readouterr().err == ("warning: one unseen class: the unseen ZSL accuracy is trivially 1; hold out "
                                       "at least 2 for a score that means something\n")
    info = build_semantics(root, table=table, unseen=["cat", "dog", "eel"], val=["bee"])
    assert (info["train"], info["val"]) == (["ant"], ["bee"])  # still written: a tiny set may have no other choice
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: one val class: the val ZSL accuracy is trivially 1")
    assert err[1].startswith("warning: one train and one val class: the validation GZSL task tells two classes "
                             "apart") and len(err) == 2


@pytest.mark.parametrize("flag", ["--table", "--text"])
def test_semantics_names_a_directory_given_for_its_file(tmp_path: Path, capsys, flag: str) -> None:
    root = _features_only(tmp_path / "pets")
    for given, what in ((tmp_path, "a directory, not a file"), (tmp_path / "nope.csv", "file not found")):
        assert main(["data", "semantics", str(root), flag, str(given)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"zsl-search: error: {given}: {what}; pass a ") and err.count("\n") == 1

"""The per-node feature store: loaded once, shared zero-copy by every trial on the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsl_search.data import load_xlsa, make_split, synthesize
from zsl_search.store import DataSource, fetch_split, get_store, process_memory, release_stores


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ~5.5k images x 2048 floats: big enough that a per-trial copy is unmistakable.
    return synthesize(tmp_path_factory.mktemp("big") / "BIG", preset="demo", scale=2.0, feat_dim=2048, seed=1)


def test_four_concurrent_trials_share_one_copy(ray_local, big_dir: Path, tmp_path: Path) -> None:
    ray = ray_local
    source = DataSource(path=str(big_dir), protocol="validation")
    store = get_store(source, search="memtest", cache_dir=tmp_path)
    stats = ray.get(store.stats.remote())
    nbytes = stats["nbytes"]
    assert nbytes > 20e6

    @ray.remote(num_cpus=0.25)  # 5 actors fit on 2 CPUs at once
    class Trial:
        def run(self, copy: bool) -> dict:
            import time

            import torch  # noqa: F401  (importing torch is not what we measure)

            import zsl_search.data  # noqa: F401

            before = process_memory()
            split = fetch_split(get_store(source, search="memtest", cache_dir=tmp_path))
            tensors = [split.train_x, split.seen_x, split.unseen_x]
            if copy:  # what a trial that loads its own features costs
                tensors = [t.clone() for t in tensors]
            total = float(sum(t.sum() for t in tensors))  # touch every page
            after = process_memory()
            time.sleep(1.0)  # overlap with the other trials
            return {"anon": after["RssAnon"] - before["RssAnon"], "shm": after["RssShmem"] - before["RssShmem"],
                    "total": total, "n": int(split.train_x.shape[0])}

    trials = [Trial.remote() for _ in range(4)]
    shared = ray.get([t.run.remote(False) for t in trials])
    copied = ray.get(trials[0].run.remote(True))  # the same process again, now copying what it reads

    feature_bytes = nbytes * 0.9  # the three feature matrices are nearly all of the split
    for r in shared:
        assert r["anon"] < 0.1 * feature_bytes, r  # no private copy in the trial
        assert r["shm"] > 0.5 * feature_bytes, r  # the pages it read are the object store's
    assert len({r["total"] for r in shared}) == 1  # all four saw the same data
    assert copied["anon"] > 0.9 * feature_bytes  # the measurement does see a copy

    stores = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("feature-store:memtest:")]
    assert len(stores) == 1  # one store on this (single) node
    final = ray.get(store.stats.remote())
    assert final["served"] == 5 and final["pid"] == stats["pid"]  # loaded once, served five trials
    assert len(release_stores("memtest")) == 1


def test_store_serves_the_same_split_as_loading_directly(ray_local, demo_dir: Path, tmp_path: Path) -> None:
    source = DataSource(path=str(demo_dir), protocol="test", seed=0)
    store = get_store(source, search="eqtest", cache_dir=tmp_path)
    served = fetch_split(store)
    direct = make_split(load_xlsa(demo_dir), "test", seed=0)
    for name in ("train_x", "train_y", "seen_x", "unseen_y", "att", "unseen_classes"):
        assert (getattr(served, name) == getattr(direct, name)).all()
    import ray

    arrays = ray.get(ray.get(store.handle.remote())["refs"][0])
    assert not arrays["train_x"].flags.writeable  # read-only views into the object store, not copies
    release_stores("eqtest")


def test_demo_source_is_generated_once(ray_local, tmp_path: Path) -> None:
    source = DataSource(path="demo")
    split = fetch_split(get_store(source, search="demotest", cache_dir=tmp_path))
    assert split.dataset == "DEMO" and split.defaults_name == "DEMO" and (tmp_path / "demo" / "res101.mat").exists()
    release_stores("demotest")


def test_a_dataset_on_s3_is_named_after_its_prefix_or_its_identity(s3_server, demo_dir: Path, tmp_path: Path) -> None:
    """Downloaded into a cache directory named by a hash, an s3:// dataset keeps the name the user
    gave it (the prefix) or the one its zsl-dataset.json carries, and so its per-dataset defaults."""
    from zsl_search.storage import open_storage
    from zsl_search.store import load_dataset

    bucket = s3_server.make_bucket("zsl-datasets")
    plain, tagged = open_storage(f"s3://{bucket}/sets/pf60"), open_storage(f"s3://{bucket}/sets/copy")
    for name in ("res101.mat", "att_splits.mat"):
        plain.write_bytes(name, (demo_dir / name).read_bytes())
        tagged.write_bytes(name, (demo_dir / name).read_bytes())
    tagged.write_bytes("zsl-dataset.json", b'{"name": "faces", "defaults": "demo"}')
    ds = load_dataset(DataSource(path=f"s3://{bucket}/sets/pf60"), cache_dir=tmp_path)
    assert (ds.name, ds.defaults) == ("PF60", "PF60") and tmp_path in ds.root.parents
    ds = load_dataset(DataSource(path=f"s3://{bucket}/sets/copy"), cache_dir=tmp_path)
    assert (ds.name, ds.defaults) == ("FACES", "DEMO")
    ds = load_dataset(DataSource(path=f"s3://{bucket}/sets/copy", defaults="CUB"), cache_dir=tmp_path)
    assert ds.defaults == "CUB"


def test_without_cuda_the_gpu_path_falls_back_to_the_shared_cpu_copy(ray_local, demo_dir: Path, tmp_path: Path) -> None:
    """The CPU twin of the CUDA-IPC path: no GPU here, so no device copy is made and a trial
    asking for CUDA gets the shared CPU arrays (its trainer then makes its own device copy)."""
    import torch

    ray = ray_local
    store = get_store(DataSource(path=str(demo_dir)), search="gputest", cache_dir=tmp_path)
    assert ray.get(store.cuda_handles.remote("GPU-00000000-0000-0000-0000-000000000000")) is None
    split = fetch_split(store, device="cuda")
    assert split.train_x.device == torch.device("cpu") and ray.get(store.stats.remote())["cuda_copies"] == 0
    release_stores("gputest")


def test_the_frozen_classifier_is_trained_once_per_node_and_equals_a_trials_own(ray_local) -> None:
    import torch

    from zsl_search import settings
    from zsl_search.models import get_variant
    from zsl_search.store import fetch_classifier
    from zsl_search.train import Trainer, pretrain_classifier

    store = get_store(DataSource(path="demo"), search="clstest", cache_dir=settings.cache_dir())
    try:
        split = fetch_split(store)
        shared = fetch_classifier(store, seed=3, epochs=2)
        again, other = fetch_classifier(store, seed=3, epochs=2), fetch_classifier(store, seed=4, epochs=2)
        assert ray_local.get(store.stats.remote())["classifiers"] == 2  # one per (seed, epochs), not per fetch
        own = pretrain_classifier(split.train_x, split.train_y, split.n_seen, epochs=2, seed=3)
        assert torch.equal(shared.weight, own.weight) and torch.equal(shared.bias, own.bias)
        assert torch.equal(again.weight, shared.weight) and not torch.equal(other.weight, shared.weight)
        # A trainer handed the shared classifier trains exactly as one that trains its own.
        params = get_variant("fclswgan").make_params({"epochs": 1, "hidden": 32, "cls_pretrain_epochs": 2},
                                                     dataset="DEMO")
        served = Trainer(split, variant="fclswgan", params=params, seed=3, classifier=shared)
        alone = Trainer(split, variant="fclswgan", params=params, seed=3)
        assert served.train_epoch() == alone.train_epoch()
    finally:
        release_stores("clstest")

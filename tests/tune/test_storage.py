"""The sweep's storage as an object store (moto's S3 server on 127.0.0.1): reads and writes through
``Storage`` with the endpoint from params or the AWS variable, no credential in what Ray pickles,
the training data published once per key and fetched per node, and a sweep with its checkpoints,
resume and ``models/`` export through the bucket."""

from __future__ import annotations

import csv
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.image_store import stored_pairs
from pipeline.errors import PipelineError
from pipeline.params_file import validate
from pipeline.tune import shared_data
from pipeline.tune.shared_data import node_data_dir, publish_data, training_folders
from pipeline.tune.storage import Storage, open_storage
from pipeline.tune.sweep import run_sweep
from tests.s3_server import CREDENTIALS, s3_server
from tests.tune.sweep_params import sweep_params


@pytest.fixture(scope="module")
def endpoint():
    with s3_server("sweeps") as url:
        yield url


def test_storage_reads_and_writes_through_the_endpoint(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_storage("s3://sweeps/roundtrip/", None, "10.0.0.1:6379")
    assert store == Storage("s3://sweeps/roundtrip", endpoint) and store.remote and store.path == "sweeps/roundtrip"
    assert not store.exists()
    store.write_bytes("a/b.txt", b"hello")
    (tmp_path / "up" / "deep").mkdir(parents=True)
    (tmp_path / "up" / "deep" / "c.bin").write_bytes(bytes(range(256)))
    store.upload(tmp_path / "up", "folder")
    assert store.exists() and store.read_bytes("a/b.txt") == b"hello"
    assert store.files() == ["a/b.txt", "folder/deep/c.bin"] and store.child("folder").files() == ["deep/c.bin"]
    store.child("folder").download("", tmp_path / "down")
    assert (tmp_path / "down" / "deep" / "c.bin").read_bytes() == bytes(range(256))
    store.delete("folder")
    assert store.files() == ["a/b.txt"]
    # the filesystem Ray pickles into its run state and ships to trials holds no credential
    pickled = pickle.dumps(store.filesystem)
    assert all(CREDENTIALS[name].encode() not in pickled for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    assert endpoint.removeprefix("http://").encode() in pickled
    # sweep.storage_endpoint wins over the variable
    assert open_storage("s3://sweeps/x", "http://10.9.9.9:9000", None).endpoint == "http://10.9.9.9:9000"


def test_an_unreachable_store_is_one_sentence(tmp_path):
    store = Storage("s3://sweeps/nowhere", "http://127.0.0.1:9")  # the discard port: connection refused
    with pytest.raises(PipelineError, match=r"^the sweep storage could not be reached at 'sweeps/nowhere/x' \(.*\); "
                                            r"check sweep.storage_path, the endpoint .* and the credentials"):
        store.read_bytes("x")


def test_training_data_is_published_once_per_key_and_fetched_per_node(endpoint, tiny_data, tmp_path, monkeypatch):
    storage = Storage("s3://sweeps/published/data", endpoint)
    data_dir = Path(tiny_data.data_dir)
    folders = training_folders(data_dir, [tiny_data.train])
    assert folders == ["hr/train", "hr/val", "lr/bicubic/x2/train", "lr/bicubic/x2/val"]
    published = publish_data(data_dir, folders, storage)
    key = published.location.rsplit("/", 1)[-1]
    assert published.exists("published.json") and len(published.files()) == 6 + 2 + 6 + 2 + 1
    assert not any(name.startswith("benchmarks/") for name in published.files())  # not validated on: not sent
    marker = published.read_bytes("published.json")
    assert publish_data(data_dir, folders, storage) == published  # the same key: nothing sent again
    assert published.read_bytes("published.json") == marker

    node_tmp = tmp_path / "node"
    node_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(node_tmp))
    local = node_data_dir(published)
    assert local == node_tmp / "srloss-data" / key
    for split in ("train", "val"):  # the node's image store built from its copy holds the driver's pixels
        ours, theirs = stored_pairs(local, "bicubic", 2, split), stored_pairs(data_dir, "bicubic", 2, split)
        assert [p.name for p in ours] == [p.name for p in theirs]
        assert all(np.array_equal(a.hr, b.hr) and np.array_equal(a.lr, b.lr) for a, b in zip(ours, theirs))

    changed = data_dir / "hr" / "val" / "img0.png"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    republished = publish_data(data_dir, folders, storage)
    assert republished != published and republished.exists("published.json")
    assert node_data_dir(republished) != local and not local.exists()  # the node keeps one copy

    published.delete()  # a storage cleared under a running sweep: one sentence, not a traceback
    (node_tmp / "srloss-data").rename(node_tmp / "moved")
    with pytest.raises(PipelineError, match="training data is missing from 's3://sweeps/published/data/"):
        node_data_dir(published)


@pytest.mark.slow
def test_a_sweep_keeps_checkpoints_in_the_bucket_and_resumes_from_it(endpoint, tiny_data, tmp_path, local_ray,
                                                                      monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # params' endpoint wins over the variable
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {}, "l2": {"loss": {"terms": {"l2": 1.0}}}},
                                                "reports": 2, "storage_path": "s3://sweeps/resumable",
                                                "storage_endpoint": endpoint})
    summary = run_sweep(params)
    assert summary["trials"] == 2 and summary["failed"] == 0 and summary["folder"] == "s3://sweeps/resumable/test"
    folder = Storage("s3://sweeps/resumable/test", endpoint)
    files = folder.files()
    for objective in ("l1", "l2"):
        assert any(f"-{objective}-seed0/checkpoint_" in name and name.endswith("/best.pt") for name in files)
        assert (Path(params.models_dir) / objective / "best.pt").stat().st_size > 0
    assert "srloss_sweep.json" in files
    assert Storage("s3://sweeps/resumable/data", endpoint).files()  # the published data
    rows = list(csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open()))
    assert {row["status"] for row in rows} == {"COMPLETED"}

    again = run_sweep(params, resume=True)  # everything finished: kept, nothing trained again
    assert again["resumed"] and again["best"] == summary["best"]
    assert json.loads(folder.read_bytes("srloss_sweep.json"))["sweep_id"] == summary["sweep_id"]


def test_a_cluster_is_warned_of_artifacts_that_would_stay_on_each_node(tmp_path, monkeypatch, caplog):
    """A tracking server that names its artifact folder as a path (no proxied artifacts): trials on other
    nodes would write their image strips and models to their own disks."""
    import ray

    from pipeline.tracking.store import ensure_experiment
    from pipeline.tune import sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = validate({"tracking": {"uri": uri, "experiment": "e", "artifact_location": str(tmp_path / "art")}})
    experiment_id = ensure_experiment(uri, "e", tmp_path / "art")
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True}, {"Alive": True}])
    monkeypatch.setattr(sweep, "is_remote", lambda uri: True)  # as if the store were behind `mlflow server`
    sweep._warn_about_local_tracking(params, experiment_id)
    assert f"keeps its artifacts in the folder file://{tmp_path / 'art'}, so trials on the cluster's other nodes" \
        in caplog.text and "--artifacts-destination s3://<bucket>/mlartifacts" in caplog.text
    caplog.clear()
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True}, {"Alive": False}])
    sweep._warn_about_local_tracking(params, experiment_id)
    assert caplog.text == ""

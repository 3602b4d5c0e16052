"""``fit`` end to end on tiny data: callbacks and files, resume == uninterrupted, determinism,
divergence, every network family learning."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from pipeline.config import LossConfig
from pipeline.errors import PipelineError
from pipeline.train.callbacks import Callback
from pipeline.train.checkpoint import load_checkpoint, restore_networks
from pipeline.train.loop import fit
from tests.conftest import CrashAtValidation
from tests.models.tiny_networks import TINY_NETWORKS


class Recorder(Callback):
    """Keeps every event as ``(name, iteration, payload)``."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_start(self, ctx):
        self.events.append(("start", None, ctx))

    def on_train_log(self, iteration, logs):
        self.events.append(("log", iteration, logs))

    def on_validation(self, iteration, metrics, samples):
        self.events.append(("validation", iteration, (metrics, samples)))

    def on_checkpoint(self, iteration, path, is_best):
        self.events.append(("best" if is_best else "last", iteration, path))

    def on_end(self, result):
        self.events.append(("end", None, result))

    def payloads(self, name: str) -> list:
        return [payload for event, _, payload in self.events if event == name]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same_tensors(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key


def test_fit_reports_to_callbacks_and_writes_checkpoints(tiny_data, tmp_path):
    tiny_data.train.val_benchmarks = ["Tiny"]
    (tiny_data.data_dir / "hr" / "manifest.json").write_text(json.dumps({"files": 6}))
    recorder = Recorder()
    result = fit(tiny_data, tmp_path / "run", [recorder])

    names = [(event, iteration) for event, iteration, _ in recorder.events]
    assert names[0] == ("start", None) and names[-1] == ("end", None)
    assert [i for e, i in names if e == "log"] == [3, 6, 9, 12]
    assert [i for e, i in names if e == "validation"] == [6, 12]
    assert [i for e, i in names if e == "last"] == [6, 12]
    assert [i for e, i in names if e == "best"] == [i for i in (6, 12) if i == result.best_iteration or i == 6]
    ctx = recorder.payloads("start")[0]
    assert ctx.data_manifest == {"hr": {"files": 6}} and ctx.device.type == "cpu"

    logs = recorder.payloads("log")[0]
    assert set(logs) == {"train/l1", "train/total", "train/lr"}
    assert logs["train/total"] == pytest.approx(logs["train/l1"])
    metrics, samples = recorder.payloads("validation")[-1]
    assert {"val/psnr", "val/ssim", "val/bicubic_psnr", "Tiny/psnr", "Tiny/ssim"} <= set(metrics)
    assert len(samples) == 2 and samples[0].sr.shape == samples[0].hr.shape == samples[0].bicubic.shape

    assert result.final_metrics == metrics and result.iterations == 12
    assert result.best_metric == max(m["val/psnr"] for m, _ in recorder.payloads("validation"))
    last = load_checkpoint(result.last_checkpoint)
    assert last["iteration"] == 12 and last["meta"]["model"] == {"name": "edsr", "args": {"n_blocks": 2, "n_feats": 16}}
    assert last["best"]["value"] == result.best_metric
    assert load_checkpoint(result.best_checkpoint)["iteration"] == result.best_iteration


OBJECTIVES_WITH_STATE = {
    "l1+ema": ({"objective": "regression", "terms": {"l1": 1.0}}, 0.9),
    "l1+gan": ({"objective": "regression", "terms": {"l1": 1.0, "gan": {"weight": 0.01, "channels": 8}}}, None),
    "tlw-stochastic": ({"objective": "tlw", "args": {"features": 8, "depth": 2, "variant": "stochastic"},
                        "terms": {}}, None),
}


@pytest.mark.parametrize("case", OBJECTIVES_WITH_STATE)
def test_resume_ends_bitwise_equal_to_an_uninterrupted_run(tiny_data, tmp_path, case):
    loss, tiny_data.train.ema = OBJECTIVES_WITH_STATE[case]
    tiny_data.loss = LossConfig.model_validate(loss)
    whole = fit(tiny_data, tmp_path / "whole")

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data, tmp_path / "split", [CrashAtValidation(6)])
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["iteration"] == 6
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "best.pt")["iteration"] == 6
    resumed = fit(tiny_data, tmp_path / "split", resume=tmp_path / "split" / "checkpoints" / "last.pt")

    a, b = load_checkpoint(whole.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert bool(a["aux"]) == (case != "l1+ema")  # the objective's own optimiser state is compared too
    for part in ("model", "objective", "ema", "optimizer", "aux", "rng"):
        assert_same_tensors(a[part] or {}, b[part] or {})
    assert resumed.final_metrics == whole.final_metrics
    assert (resumed.best_metric, resumed.best_iteration) == (whole.best_metric, whole.best_iteration)


def test_same_seed_same_weights_other_seed_other_weights(tiny_data, tmp_path):
    tiny_data.train.iterations = 4
    first = load_checkpoint(fit(tiny_data, tmp_path / "a").last_checkpoint)["model"]
    second = load_checkpoint(fit(tiny_data, tmp_path / "b").last_checkpoint)["model"]
    assert_same_tensors(first, second)
    tiny_data.seed = 1
    other = load_checkpoint(fit(tiny_data, tmp_path / "c").last_checkpoint)["model"]
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_images_mapped_from_the_store_train_the_same_weights_as_decoded_ones(tiny_data, tmp_path):
    tiny_data.train.iterations = 6
    tiny_data.train.val_benchmarks = ["Tiny"]
    tiny_data.train.image_store = "memory"
    decoded = fit(tiny_data, tmp_path / "memory")
    assert not (tiny_data.data_dir / "store").exists()
    tiny_data.train.image_store = "mapped"
    mapped = fit(tiny_data, tmp_path / "mapped")
    assert sorted(p.name for p in (tiny_data.data_dir / "store" / "bicubic" / "x2").iterdir()) == ["Tiny", "train", "val"]
    first, second = load_checkpoint(decoded.last_checkpoint), load_checkpoint(mapped.last_checkpoint)
    for part in ("model", "objective", "optimizer"):
        assert_same_tensors(first[part], second[part])
    assert decoded.final_metrics == mapped.final_metrics


@pytest.mark.parametrize("checkpoint_every", [1, 100])
def test_divergence_stops_with_the_last_good_checkpoint_intact(tiny_data, tmp_path, checkpoint_every):
    tiny_data.train.lr = 1e10
    tiny_data.train.checkpoint_every = checkpoint_every
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    where = ".*last.pt" if checkpoint_every == 1 else "not written yet"
    with pytest.raises(PipelineError, match=r"training diverged at iteration 2 \(loss=(nan|inf)\); lower train.lr or "
                                            rf"enable train.grad_clip; the last good checkpoint is {where}"):
        fit(tiny_data, tmp_path / "run")
    if checkpoint_every == 1:
        assert load_checkpoint(last)["iteration"] == 1
    else:
        assert not last.exists()


def test_unknown_select_metric_names_the_choices(tiny_data, tmp_path):
    tiny_data.train.select_metric = "val/psnrr"
    with pytest.raises(PipelineError, match="'val/psnrr' is not a validation metric; choose one of: .*val/psnr"):
        fit(tiny_data, tmp_path / "run")


def test_resume_refuses_a_different_network(tiny_data, tmp_path):
    tiny_data.train.iterations = 1
    result = fit(tiny_data, tmp_path / "run")
    tiny_data.model.args = {"n_blocks": 2, "n_feats": 8}
    with pytest.raises(PipelineError, match="trained with different model.args.n_feats"):
        fit(tiny_data, tmp_path / "run", resume=result.last_checkpoint)


def test_resume_takes_hyperparameters_from_params(tiny_data, tmp_path, caplog):
    tiny_data.train.iterations = 4
    tiny_data.train.val_every = tiny_data.train.checkpoint_every = 2
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data, tmp_path / "run", [CrashAtValidation(2)])
    tiny_data.train.lr = 5e-4
    tiny_data.train.scheduler.name = "constant"
    with caplog.at_level(logging.WARNING, logger="pipeline.train.resume"):
        result = fit(tiny_data, tmp_path / "run", resume=tmp_path / "run" / "checkpoints" / "last.pt")
    assert "train.lr" in caplog.text and "train.scheduler.name" in caplog.text
    assert load_checkpoint(result.last_checkpoint)["optimizer"]["param_groups"][0]["lr"] == 5e-4


def test_optional_paths_train_and_restore_the_ema_weights(tiny_data, tmp_path):
    train = tiny_data.train
    train.iterations, train.channels_last, train.grad_clip, train.optimizer, train.ema = 4, True, 0.01, "adamw", 0.5
    train.scheduler.name, train.weight_decay = "multistep", 1e-4
    result = fit(tiny_data, tmp_path / "run")
    checkpoint = load_checkpoint(result.best_checkpoint)
    net, objective = restore_networks(checkpoint)
    restored = net.state_dict()
    assert_same_tensors(restored, checkpoint["ema"]["net"])
    assert_same_tensors(objective.head.state_dict(), checkpoint["ema"]["head"])
    assert not all(torch.equal(value, checkpoint["model"][key]) for key, value in restored.items())


@pytest.mark.parametrize("name", TINY_NETWORKS)
def test_every_network_family_learns(tiny_data, tmp_path, name):
    tiny_data.model.name, tiny_data.model.args = name, TINY_NETWORKS[name]
    train = tiny_data.train
    train.iterations, train.val_every, train.log_every, train.checkpoint_every, train.lr = 40, 5, 5, 40, 2e-3
    recorder = Recorder()
    fit(tiny_data, tmp_path / name, [recorder])
    losses = [logs["train/total"] for logs in recorder.payloads("log")]
    psnrs = [metrics["val/psnr"] for metrics, _ in recorder.payloads("validation")]
    assert losses[-1] < 0.6 * losses[0]
    assert psnrs[-1] > psnrs[0] + 1.0

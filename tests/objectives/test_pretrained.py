"""Loading VGG weights: hub cache, explicit files, caching, failures as PipelineError, never random weights."""

import hashlib
from pathlib import Path

import pytest
import torch

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives import pretrained
from pipeline.objectives.pretrained import VGGFeatures, hub_checkpoint_path, layer_names, load_vgg, official_filename


def test_official_file_names_are_torchvisions():
    assert official_filename("vgg19") == "vgg19-dcbb9e9d.pth"
    assert official_filename("vgg16") == "vgg16-397923af.pth"


def test_layer_names_follow_vgg_blocks():
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-3:] == ["conv5_4", "relu5_4", "pool5"] and len(names) == 37
    assert "conv5_4" not in layer_names("vgg16") and layer_names("vgg16")[-3:] == ["conv5_3", "relu5_3", "pool5"]


def test_loads_the_hub_file_exactly(random_vgg_hub):
    features = load_vgg("vgg19")
    saved = torch.load(random_vgg_hub / "vgg19-dcbb9e9d.pth", weights_only=True)
    assert all(torch.equal(value, saved[f"features.{key}"]) for key, value in features.state_dict().items())
    assert not any(p.requires_grad for p in features.parameters()) and not features.training
    assert not any(getattr(m, "inplace", False) for m in features)


def test_explicit_features_only_file_and_read_cache(tmp_path, random_vgg_hub):
    official = torch.load(random_vgg_hub / "vgg16-397923af.pth", weights_only=True)
    state = {key.removeprefix("features."): value for key, value in official.items()}
    path = tmp_path / "my_vgg16.pth"
    torch.save(state, path)
    hits = pretrained._read_features_state.cache_info().hits
    first, second = load_vgg("vgg16", path), load_vgg("vgg16", str(path))
    assert pretrained._read_features_state.cache_info().hits == hits + 1
    assert torch.equal(first[0].weight, state["0.weight"]) and first[0].weight is not second[0].weight


def test_missing_weights_fail_in_one_sentence_without_random_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def offline(url: str, destination: Path) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(pretrained, "_download", offline)
    with pytest.raises(PipelineError) as error:
        VGGFeatures(["conv5_4"], setting="loss.terms.perceptual.weights")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "loss.terms.perceptual.weights=" in message and "network is unreachable" in message
    assert "\n" not in message


def test_bad_explicit_files_are_pipeline_errors(tmp_path, random_vgg_hub):
    with pytest.raises(PipelineError, match="does not exist"):
        load_vgg("vgg19", tmp_path / "absent.pth")
    with pytest.raises(PipelineError, match="no tensor"):
        load_vgg("vgg16", random_vgg_hub / "vgg19-dcbb9e9d.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(PipelineError, match="not a readable"):
        load_vgg("vgg19", garbage)
    with pytest.raises(ConfigError, match="vgg11"):
        load_vgg("vgg11")


def test_download_checks_the_hash_in_the_file_name(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()[:8]
    good = tmp_path / "hub" / f"vgg19-{digest}.pth"
    pretrained._download(source.as_uri(), good)
    assert good.read_bytes() == b"weights"
    bad = tmp_path / "hub" / "vgg19-00000000.pth"
    with pytest.raises(OSError, match="sha256"):
        pretrained._download(source.as_uri(), bad)
    assert sorted(p.name for p in bad.parent.iterdir()) == [good.name]


def test_features_before_and_after_relu_and_normalisation(random_vgg_hub):
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    normalized = VGGFeatures(["conv1_1", "relu1_1", "pool2"])
    raw = VGGFeatures(["conv1_1", "relu1_1", "pool2"], normalize=False)
    found = normalized(image)
    assert (found["conv1_1"] < 0).any()
    assert torch.equal(found["relu1_1"], found["conv1_1"].clamp_min(0))
    assert found["pool2"].shape == (2, 128, 8, 8)
    mean, std = torch.tensor(pretrained.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(pretrained.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(raw((image - mean) / std)["pool2"], found["pool2"])


def test_vgg_stays_out_of_state_dict_and_parameters_but_follows_dtype(random_vgg_hub):
    features = VGGFeatures(["relu2_1"])
    assert features.state_dict() == {} and list(features.parameters()) == []
    features.to(torch.float64)
    assert features(torch.rand(1, 3, 16, 16, dtype=torch.float64))["relu2_1"].dtype == torch.float64


def test_unknown_layer_is_rejected_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    with pytest.raises(ValueError, match="conv6_1"):
        VGGFeatures(["conv6_1"])
    assert not hub_checkpoint_path("vgg19").exists()

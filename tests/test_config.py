"""params.yaml loading: defaults, overrides, and one-sentence errors."""

from pathlib import Path

import pytest
import yaml

from pipeline.config import Params
from pipeline.errors import ConfigError
from pipeline.params_file import apply_overrides, load_params, parse_override, validate


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


SHIPPED = Path(__file__).resolve().parents[1] / "params.yaml"


def test_project_params_file_is_valid():
    params = load_params(SHIPPED)
    assert params.train.scale in params.degrade.scales
    assert params.data_dir.is_absolute()


def test_empty_file_gives_defaults_with_absolute_paths(tmp_path):
    params = load_params(write(tmp_path, {}))
    assert params.train.lr == Params().train.lr
    assert params.data_dir == (tmp_path / "data").resolve()
    assert params.prepare.cache_dir.is_absolute()


def test_override_parses_yaml_values(tmp_path):
    params = load_params(write(tmp_path, {}), ["train.lr=2e-4", "degrade.scales=[4, 2]", "loss.terms={l1: 1, grad2: 0.1}"])
    assert params.train.lr == 2e-4
    assert params.degrade.scales == [2, 4]
    assert params.loss.terms == {"l1": 1.0, "grad2": 0.1}


def test_override_creates_nested_keys():
    data = apply_overrides({"train": {"lr": 1.0}}, ["model.args.n_feats=16"])
    assert data == {"train": {"lr": 1.0}, "model": {"args": {"n_feats": 16}}}


@pytest.mark.parametrize("text", ["train.lr", "=3", "train.lr=[1, "])
def test_malformed_override_is_one_sentence(text):
    with pytest.raises(ConfigError) as err:
        parse_override(text)
    assert "\n" not in str(err.value)


def test_unknown_key_names_it_and_lists_allowed(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, {"train": {"lrr": 1e-4}}))
    message = str(err.value)
    assert "'train.lrr'" in message and "lr," in message and "\n" not in message


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"'train\.iterations'.*'many'"):
        load_params(write(tmp_path, {}), ["train.iterations=many"])


@pytest.mark.parametrize(
    "override, key",
    [("train.scale=0", "train.scale"), ("degrade.scales=[1]", "degrade.scales"),
     ("degrade.presets.blurred.blur.sigma=-1", "degrade.presets.blurred.blur.sigma"),
     ("prepare.source.kind=folder", "prepare.source"), ("train.lr=0", "train.lr")],
)
def test_impossible_values_fail_at_load(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(write(tmp_path, {}), [override])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")


def test_digest_depends_only_on_named_sections():
    a, b = validate({}), validate({"train": {"lr": 1e-3}})
    assert a.digest("degrade") == b.digest("degrade")
    assert a.digest("train") != b.digest("train")


def test_missing_source_folder_fails_at_load_unless_optional(tmp_path):
    source = {"kind": "folder", "path": "no/such/dir"}
    with pytest.raises(ConfigError, match=r"'prepare\.source\.path'.*does not exist"):
        load_params(write(tmp_path, {"prepare": {"source": source}}))
    params = load_params(write(tmp_path, {"prepare": {"benchmarks": {"X": {**source, "optional": True}}}}))
    assert params.prepare.benchmarks["X"].path == (tmp_path / "no/such/dir").resolve()

"""The sweep folder before Ray starts: a new sweep replaces an old one (saying so) and nothing else,
``--resume`` needs one whose Tune state is whole."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.errors import PipelineError
from pipeline.tune.storage import Storage
from pipeline.tune.sweep_folder import STATE_FILE, prepare_sweep_folder


def test_a_new_sweep_replaces_the_old_folder_and_says_so(tmp_path, caplog):
    folder = tmp_path / "study"
    (folder / "old-trial").mkdir(parents=True)
    (folder / STATE_FILE).write_text("{}")  # the marker every sweep writes
    with caplog.at_level(logging.INFO, logger="pipeline.tune.sweep_folder"):
        assert prepare_sweep_folder(Storage(str(folder)), resume=False) == {}
    assert not folder.exists() and f"replacing the earlier sweep folder {folder}" in caplog.text


def test_resume_needs_a_restorable_folder_with_whole_tune_state(tmp_path):
    folder = tmp_path / "study"
    with pytest.raises(PipelineError, match=f"--resume: there is no sweep to resume in '{folder}'"):
        prepare_sweep_folder(Storage(str(folder)), resume=True)
    folder.mkdir()
    (folder / "tuner.pkl").write_bytes(b"tuner")
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text("")  # cut short by a kill
    with pytest.raises(PipelineError, match="run state .*experiment_state-2026-01-01_00-00-00.json' is damaged"):
        prepare_sweep_folder(Storage(str(folder)), resume=True)
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    (folder / STATE_FILE).write_text(json.dumps({"parent_run_id": "abc"}))
    assert prepare_sweep_folder(Storage(str(folder)), resume=True) == {"parent_run_id": "abc"}
    assert (folder / "tuner.pkl").is_file()


def test_a_folder_no_sweep_made_is_never_deleted(tmp_path):
    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    (folder / "holiday" / "a.jpg").write_bytes(b"jpeg")
    with pytest.raises(PipelineError, match=rf"'{folder}' exists but is not a sweep folder \(it lacks {STATE_FILE}, "
                                            r"which every sweep writes\), so it is not replaced; set sweep.name"):
        prepare_sweep_folder(Storage(str(folder)), resume=False)
    assert (folder / "holiday" / "a.jpg").read_bytes() == b"jpeg"

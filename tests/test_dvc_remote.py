"""A DVC remote on the sweep's object store (moto's S3 server on 127.0.0.1), as docs/cluster.md sets it
up: ``dvc push`` from one checkout, ``dvc pull`` in a fresh clone restores the data and models byte
for byte, with the endpoint in the remote's config and the credentials only in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_server import CREDENTIALS, s3_server

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.mark.slow
def test_dvc_push_and_pull_through_an_s3_compatible_remote(tmp_path):
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    (origin / "data" / "hr" / "train").mkdir(parents=True)
    (origin / "data" / "hr" / "train" / "img0.png").write_bytes(os.urandom(3000))
    (origin / "models" / "l1").mkdir(parents=True)
    (origin / "models" / "l1" / "best.pt").write_bytes(os.urandom(5000))
    with s3_server("study") as endpoint:
        for command in (["git", "init", "-q"], ["git", "config", "user.name", "srloss tests"],
                        ["git", "config", "user.email", "tests@srloss.invalid"], ["dvc", "init", "-q"],
                        ["dvc", "add", "-q", "data", "models"],
                        ["dvc", "remote", "add", "-d", "storage", "s3://study/dvc"],
                        ["dvc", "remote", "modify", "storage", "endpointurl", endpoint],
                        ["git", "add", "-A"], ["git", "commit", "-qm", "data and models"]):
            run(command, origin)
        assert "4 files pushed" in run(["dvc", "push"], origin)  # two files, two folder listings
        config = (origin / ".dvc" / "config").read_text()
        assert endpoint in config and not any(CREDENTIALS[name] in config for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))

        run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
        assert not (clone / "data").exists() and not (clone / "models").exists()
        run(["dvc", "pull"], clone)
        assert files(clone / "data") == files(origin / "data") and files(clone / "models") == files(origin / "models")

"""Input files: only regular files are read, never past their limit, never blocking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kfg.files.inputfile import InputFileError, read_bounded

REPO = Path(__file__).resolve().parents[2]


def test_a_regular_file_is_read_whole_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(InputFileError) as refused:
        read_bounded(path, 99)
    assert refused.value.code == "too-large"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "kale.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="named pipe") as refused:
        read_bounded(fifo, 1 << 20)
    assert refused.value.code == "not-a-file"


def test_a_link_to_a_device_is_refused_before_reading(tmp_path: Path) -> None:
    link = tmp_path / "kale.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match="character device"):
        read_bounded(link, 1 << 20)


def _validate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "validate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_validate_refuses_special_files_named_kale_yaml(tmp_path: Path, kind: str) -> None:
    (tmp_path / ".git").mkdir()
    path = tmp_path / "sub" / "kale.yaml"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    for target in ("sub/kale.yaml", "."):  # named, and found by directory discovery
        result = _validate(target, cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "kale.yaml:1:1: error: not a regular file" in result.stdout
        assert "Traceback" not in result.stderr

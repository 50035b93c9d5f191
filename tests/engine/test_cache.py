"""The step cache takes the digests the runtime computed while writing, and still finds a
damaged entry before anyone reads it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kfg.engine import cache as cache_module
from kfg.engine.cache import DIGESTS, OUTPUTS, Cache
from kfg.runtime.step import write_value

KEY = "ab" + "0" * 62


def _workspace(cache: Cache, values: dict[str, Any], report: bool = True) -> Path:
    work = cache.workspace()
    written = {name: write_value(name, v, str(work / OUTPUTS / name)) for name, v in values.items()}
    if report:
        (work / DIGESTS).write_text(json.dumps(written), encoding="utf-8")
    return work


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


VALUES = {"frame": pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), "array": np.arange(50)}


def test_commit_takes_the_reported_digests_without_reading_the_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path / ".kfg")
    work = _workspace(cache, VALUES)

    def no_reading(path: Path) -> str:
        raise AssertionError(f"{path} was read again to hash it")

    monkeypatch.setattr(cache_module, "file_digest", no_reading)
    entry = cache.commit(work, KEY, {"step": "s", "metrics": {}})
    monkeypatch.undo()
    for name in VALUES:
        assert entry.digests[name] == _sha256(entry.output(name))
    assert entry.result["sizes"] == {n: entry.output(n).stat().st_size for n in VALUES}
    fresh = Cache(tmp_path / ".kfg").lookup(KEY)  # another process: verified in full
    assert fresh is not None and fresh.digests == entry.digests


@pytest.mark.parametrize("report", ["none", "wrong-size"])
def test_commit_hashes_what_the_runtime_did_not_report(tmp_path: Path, report: str) -> None:
    cache = Cache(tmp_path / ".kfg")
    work = _workspace(cache, VALUES, report=report != "none")
    if report == "wrong-size":
        reported = json.loads((work / DIGESTS).read_text())
        reported["array"] = {**reported["array"], "size": 1, "sha256": "0" * 64}
        (work / DIGESTS).write_text(json.dumps(reported))
    entry = cache.commit(work, KEY, {"step": "s", "metrics": {}})
    for name in VALUES:
        assert entry.digests[name] == _sha256(entry.output(name))


@pytest.mark.parametrize("damage", ["same-size", "truncated", "missing"])
def test_a_damaged_output_is_found_and_set_aside(tmp_path: Path, damage: str) -> None:
    cache = Cache(tmp_path / ".kfg")
    entry = cache.commit(_workspace(cache, VALUES), KEY, {"step": "s", "metrics": {}})
    output = entry.output("array")
    data = bytearray(output.read_bytes())
    if damage == "same-size":
        data[-1] ^= 0xFF  # one bit of one element: size and format intact
        output.write_bytes(bytes(data))
    elif damage == "truncated":
        output.write_bytes(bytes(data[:-8]))
    else:
        output.unlink()
    warnings: list[str] = []
    assert Cache(tmp_path / ".kfg", warn=warnings.append).lookup(KEY) is None
    assert len(warnings) == 1 and "output `array`" in warnings[0]
    assert len(list((tmp_path / ".kfg" / "damaged").iterdir())) == 1


def _age(entry_outputs: Path, seconds: float) -> None:
    """Date every output `seconds` back, as files written by an earlier run are."""
    for output in entry_outputs.iterdir():
        then = time.time_ns() - int(seconds * 1e9)
        os.utime(output, ns=(then, then))


def _counting_digests(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = cache_module.file_digest

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(cache_module, "file_digest", counting)
    return hashed


def test_a_checked_entry_is_stamped_and_the_next_process_trusts_what_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run with every step cached read every cached byte again: 0.6 s more for 877 MB.
    entry = Cache(tmp_path / ".kfg").commit(
        _workspace(Cache(tmp_path / ".kfg"), VALUES), KEY, {"step": "s", "metrics": {}}
    )
    hashed = _counting_digests(monkeypatch)
    # Written just now: a rewrite in the same clock tick could keep the mtime, so the
    # first check hashes and stamps nothing (git's racy-clean rule).
    assert Cache(tmp_path / ".kfg").lookup(KEY) is not None
    assert len(hashed) == 2 and not (entry.path / cache_module.STAMPS).exists()
    _age(entry.path / OUTPUTS, 10)
    assert Cache(tmp_path / ".kfg").lookup(KEY) is not None  # hashed, then stamped
    assert len(hashed) == 4 and (entry.path / cache_module.STAMPS).exists()
    hashed.clear()
    assert Cache(tmp_path / ".kfg").lookup(KEY) is not None  # a stat each, no read
    assert hashed == []


@pytest.mark.parametrize("change", ["same-size", "other-size", "replaced-same-mtime"])
def test_an_output_changed_after_its_stamp_is_hashed_and_found(tmp_path: Path, change: str) -> None:
    cache = Cache(tmp_path / ".kfg")
    entry = cache.commit(_workspace(cache, VALUES), KEY, {"step": "s", "metrics": {}})
    _age(entry.path / OUTPUTS, 10)
    assert Cache(tmp_path / ".kfg").lookup(KEY) is not None  # stamps it
    output = entry.output("array")
    data = bytearray(output.read_bytes())
    data[-1] ^= 0xFF
    if change == "same-size":
        output.write_bytes(bytes(data))  # in place: a new mtime
    elif change == "other-size":
        output.write_bytes(bytes(data) + b"\0")
    else:  # a new file dated as the old one (cp -p, rsync -t): another inode
        before = output.stat()
        replacement = output.with_name("array.new")
        replacement.write_bytes(bytes(data))
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, output)
    warnings: list[str] = []
    assert Cache(tmp_path / ".kfg", warn=warnings.append).lookup(KEY) is None
    assert len(warnings) == 1 and "output `array` changed on disk" in warnings[0]


def test_a_stamp_vouches_only_for_files_written_well_before_it(tmp_path: Path) -> None:
    cache = Cache(tmp_path / ".kfg")
    entry = cache.commit(_workspace(cache, VALUES), KEY, {"step": "s", "metrics": {}})
    output = entry.output("array")
    info = output.stat()
    signature = [info.st_size, info.st_mtime_ns, info.st_ino]
    stamps = entry.path / cache_module.STAMPS
    for taken, trusted in [
        (info.st_mtime_ns + cache_module.STAMP_MARGIN_NS + 1, True),
        (info.st_mtime_ns + cache_module.STAMP_MARGIN_NS, False),  # the same tick, maybe
        (info.st_mtime_ns, False),
    ]:
        stamps.write_text(json.dumps({"taken": taken, "files": {"array": signature}}))
        assert ("array" in cache_module._stamps(entry.path)) is trusted
    for broken in ["", "[]", '{"taken": "x", "files": {}}', '{"taken": 1, "files": {"a": 3}}']:
        stamps.write_text(broken)
        assert cache_module._stamps(entry.path) == {}

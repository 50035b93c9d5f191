"""The step cache takes the digests the runtime computed while writing, and still finds a
damaged entry before anyone reads it."""

from __future__ import annotations

import hashlib
import json
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

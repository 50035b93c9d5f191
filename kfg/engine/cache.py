"""The content-addressed step cache behind `kfg run`: same inputs, same code, no work.

A step's key is a hash of everything that decides its outputs: its cells and the prelude,
the step runtime, its image and packages as declared, the values of the parameters it
reads, and the hashes of the exact input values it receives. An entry is written under a
temporary name and renamed into place when the step succeeded, so an interrupted or
failed run leaves only complete entries behind and the next run resumes from them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfg import runtime
from kfg.runtime.step import hash_file

RESULT = "result.json"
OUTPUTS = "outputs"
REPORT = "report.html"
LOG = "log.txt"
# What a verified entry's outputs looked like on disk (see `Cache._damage`).
STAMPS = "stamps.json"
# A stamp vouches only for files last written this long before it was taken: a write in
# the same tick of the file system's clock as the stamped one would leave the mtime as it
# was (git's "racy clean" entries). FAT keeps mtimes in 2-second steps.
STAMP_MARGIN_NS = 2_000_000_000
# What the step runtime wrote while saving the outputs: {variable: {size, sha256, format}}.
DIGESTS = "digests.json"
# 2: values are files in their library's format (version 1 wrapped each in a tar). The step
# runtime's source is part of every key as well, so entries of either never mix.
KEY_VERSION = 2


def file_digest(path: Path) -> str:
    """The sha256 of a value's file, as the step runtime computes it while writing."""
    return hash_file(str(path))[1]


def step_key(
    *,
    prelude: list[tuple[int, str]],
    cells: list[tuple[int, str]],
    image: str,
    packages: tuple[str, ...],
    parameters: dict[str, Any],
    inputs: dict[str, str],
    outputs: tuple[str, ...],
    metrics: dict[str, str],
) -> str:
    """The cache key; `inputs` maps each variable to the digest of the value received."""
    material = {
        "version": KEY_VERSION,
        "runtime": runtime.source_digest(),
        "prelude": [source for _, source in prelude],
        "cells": [source for _, source in cells],
        "image": image,
        "packages": sorted(packages),
        "parameters": parameters,
        "inputs": inputs,
        "outputs": sorted(outputs),
        "metrics": metrics,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    result: dict[str, Any]

    def output(self, variable: str) -> Path:
        return self.path / OUTPUTS / variable

    @property
    def digests(self) -> dict[str, str]:
        digests: dict[str, str] = self.result.get("digests", {})
        return digests

    @property
    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = self.result.get("metrics", {})
        return metrics

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def log(self) -> Path:
        return self.path / LOG


class Cache:
    def __init__(self, root: Path, warn: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.steps = root / "steps"
        self.warn = warn or (lambda message: None)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._verified: set[str] = set()

    def claim(self, key: str) -> threading.Lock:
        """The lock of one key: concurrent runs (parallel trials) compute a step only once."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def lookup(self, key: str) -> Entry | None:
        """The entry of `key`, checked against the digests it recorded, or None.

        A damaged entry (an unreadable result, an output missing or changed on disk) is
        never used: it is set aside under `damaged/`, reported once, and the step runs again.
        """
        path = self.steps / key[:2] / key
        if not path.is_dir():
            return None
        try:
            result = json.loads((path / RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
        if key not in self._verified:
            begun = time.time_ns()
            stamped = _stamps(path)
            problem, seen = self._damage(path, result, stamped)
            if problem is not None:
                self._set_aside(path, key, problem)
                return None
            _stamp(path, seen, stamped, begun)
        assert isinstance(result, dict)
        self._verified.add(key)
        return Entry(key, path, result)

    @staticmethod
    def _damage(
        path: Path, result: Any, stamped: dict[str, Any]
    ) -> tuple[str | None, dict[str, list[int]]]:
        """What is wrong with an entry: sizes first (a stat), then every byte against the
        digests recorded at commit, once per entry and process; with the stat signature of
        each output it found sound, for `_stamp`.

        Hashing every byte made a run with every step cached cost 0.6 s more for 877 MB of
        cached values. An output whose size, mtime and inode are those an earlier check
        stamped after hashing it (`_stamp`) is taken as checked, as git's index takes a
        file whose stat it recorded: a file rewritten since has another mtime.
        """
        seen: dict[str, list[int]] = {}
        if not isinstance(result, dict) or not isinstance(result.get("digests"), dict):
            return f"its {RESULT} is unreadable", seen
        sizes = result.get("sizes")
        for name, digest in sorted(result["digests"].items()):
            output = path / OUTPUTS / name
            try:
                info = output.stat()
                if isinstance(sizes, dict) and info.st_size != sizes.get(name):
                    return f"output `{name}` changed on disk", seen
                seen[name] = _signature(info)
                if stamped.get(name) != seen[name] and file_digest(output) != digest:
                    return f"output `{name}` changed on disk", seen
            except OSError:
                return f"output `{name}` is missing", seen
        return None, seen

    def _set_aside(self, path: Path, key: str, problem: str) -> None:
        damaged = self.root / "damaged"
        damaged.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=damaged))
        try:
            os.replace(path, target / key)
        except OSError:
            return  # another run set it aside first and reported it
        self._verified.discard(key)
        self.warn(
            f"kfg: a cached step result was damaged ({problem}); it was moved to"
            f" {target / key} and the step runs again"
        )

    def _create_root(self) -> None:
        """The cache directory, ignoring itself as pytest's cache does: following the README
        in a git repository must never commit it."""
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Created by kfg: the local run cache.\n*\n", encoding="utf-8")

    def workspace(self) -> Path:
        """A fresh directory to run a step in; `commit` moves it into the cache."""
        self._create_root()
        scratch = self.root / "tmp"
        scratch.mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="step-", dir=scratch))
        (work / OUTPUTS).mkdir()
        return work

    def commit(self, work: Path, key: str, result: dict[str, Any]) -> Entry:
        """Record a successful step: digests of its outputs, then one rename into place.

        The digests are those the runtime computed while writing each output (DIGESTS in
        the workspace); an output it did not report, or whose size differs from what it
        reported, is hashed here instead.
        """
        reported = _reported(work / DIGESTS)
        digests: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for output in sorted((work / OUTPUTS).iterdir()):
            size = output.stat().st_size
            known = reported.get(output.name)
            if isinstance(known, dict) and known.get("size") == size and known.get("sha256"):
                digests[output.name] = str(known["sha256"])
            else:
                digests[output.name] = file_digest(output)
            sizes[output.name] = size
        result = {**result, "digests": digests, "sizes": sizes}
        (work / RESULT).write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
        target = self.steps / key[:2] / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # A step re-executed on purpose (--no-cache, --from, --only): the fresh result is
            # the one reported and kept. A directory cannot be renamed over another, so the
            # old entry is moved aside first; a reader in between sees a miss, never a mix.
            retired = Path(tempfile.mkdtemp(prefix="retired-", dir=work.parent))
            os.replace(target, retired / key)
            os.replace(work, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(work, target)
        self._verified.add(key)  # its digests were computed just now
        entry = self.lookup(key)
        assert entry is not None
        return entry

    def discard(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)


def _signature(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _stamps(path: Path) -> dict[str, Any]:
    """The outputs an earlier check vouched for, by name: those last written well before
    the stamp was taken (STAMP_MARGIN_NS), so that a later write shows in their mtime."""
    try:
        stamps = json.loads((path / STAMPS).read_text(encoding="utf-8"))
        taken, files = stamps["taken"], stamps["files"]
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    if type(taken) is not int or not isinstance(files, dict):
        return {}
    return {
        name: signature
        for name, signature in files.items()
        if isinstance(signature, list)
        and len(signature) == 3
        and all(type(n) is int for n in signature)
        and signature[1] < taken - STAMP_MARGIN_NS
    }


def _stamp(path: Path, seen: dict[str, list[int]], stamped: dict[str, Any], taken: int) -> None:
    """Record how the outputs of an entry just checked looked on disk (`seen`, stat before
    hashing), for the next process; unless that is what `stamped` already says. One
    atomic rename; a stamp that cannot be written only costs the next check time.

    The stamp is dated when the check began, so a file rewritten while it was being
    hashed has a later mtime than the one recorded; outputs written too recently to be
    told apart from a rewrite are left out, and a later check stamps them."""
    files = {name: sig for name, sig in seen.items() if sig[1] < taken - STAMP_MARGIN_NS}
    if not files or files == stamped:
        return
    partial = path / f"{STAMPS}.{os.getpid()}.{threading.get_ident()}.partial"
    with contextlib.suppress(OSError):
        partial.write_text(json.dumps({"taken": taken, "files": files}), encoding="utf-8")
        os.replace(partial, path / STAMPS)
    with contextlib.suppress(OSError):
        partial.unlink()


def _reported(path: Path) -> dict[str, Any]:
    try:
        reported = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return reported if isinstance(reported, dict) else {}

"""Run kfg commands in-process on hostile input and check what every failure must look like.

In-process (typer's CliRunner on `kfg.cli.app.app`) because a subprocess adds a second of
start-up per case and proves nothing more here: `kfg.cli.app.main` only turns a `KfgError` into
its line and exit status, which `invoke` does the same way, and any other exception is
exactly the internal error this suite looks for.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kfg.cli.app import app
from kfg.errors import KfgError

RUNNER = CliRunner()
# Where the slowest cases are recorded, for the note (no timing is asserted).
TIMINGS = os.environ.get("KFG_HOSTILE_TIMINGS")

NOTEBOOK: dict[str, Any] = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "cells": [
        {
            "cell_type": "code",
            "id": "c1",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "rate = 0.5\nname = 'x'",
        },
        {
            "cell_type": "code",
            "id": "c2",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "data = [rate] * 3",
        },
        {
            "cell_type": "code",
            "id": "c3",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "score = sum(data) / len(data)\nprint(name, score)",
        },
    ],
}
KALE = """\
apiVersion: kfg.dev/v1alpha1
kind: NotebookPipeline
metadata:
  name: tiny
spec:
  notebook: tiny.ipynb
  image: python:3.11-slim
  parameters: {cell: 1}
  steps:
    - name: prepare
      cells: [2]
    - name: score
      cells: [3]
  metrics:
    - {name: score, variable: score}
"""


@dataclass
class Outcome:
    args: tuple[str, ...]
    code: int
    output: str
    bug: BaseException | None
    seconds: float


def invoke(args: Sequence[str], cwd: Path, stdin: str | bytes | None = None) -> Outcome:
    """`kfg *args` in `cwd`; a `KfgError` ends as `kfg.cli.app.main` would end it."""
    before = Path.cwd()
    os.chdir(cwd)
    started = time.perf_counter()
    try:
        result = RUNNER.invoke(app, list(args), input=stdin, catch_exceptions=True)
    finally:
        os.chdir(before)
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    code, bug = result.exit_code, None
    exc = result.exception
    if isinstance(exc, KfgError):
        code, output = exc.exit_code, output + f"kfg: {exc}\n"
    elif exc is not None and not isinstance(exc, SystemExit):
        bug = exc
    outcome = Outcome(tuple(args), code, output, bug, seconds)
    if TIMINGS:
        with open(TIMINGS, "a", encoding="utf-8") as log:
            log.write(json.dumps({"args": list(args), "cwd": cwd.name, "s": seconds}) + "\n")
    return outcome


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: to see that nothing was written."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


LOCATED = re.compile(r"[\w./-]+:\d+(:\d+)?:")


def check(
    outcome: Outcome, *, valid: bool | None, names: str | tuple[str, ...] | None, located: bool
) -> None:
    """What every outcome must be: 0 for valid input, 1 or 2 otherwise; no traceback, no
    internal error; a failure names the file (and a line, where the input has lines)."""
    text = outcome.output
    assert outcome.bug is None, f"{outcome.args}: internal error {outcome.bug!r}\n{text}"
    assert "Traceback" not in text, f"{outcome.args}:\n{text}"
    assert "internal error" not in text, f"{outcome.args}:\n{text}"
    if valid is True:
        assert outcome.code == 0, f"{outcome.args}: exit {outcome.code}\n{text}"
        return
    allowed = {1, 2} if valid is False else {0, 1, 2}
    assert outcome.code in allowed, f"{outcome.args}: exit {outcome.code}\n{text}"
    if outcome.code == 0:
        return
    assert text.strip(), f"{outcome.args}: failed without a word"
    if names is not None:
        options = (names,) if isinstance(names, str) else names
        assert any(n in text for n in options), f"{outcome.args}: no line names {names}:\n{text}"
    if located:
        assert LOCATED.search(text), f"{outcome.args}: no file:line in\n{text}"


def project(root: Path, kale: str | bytes = KALE, notebook: object = NOTEBOOK) -> Path:
    """A directory holding kale.yaml and tiny.ipynb (either may be hostile)."""
    root.mkdir(parents=True, exist_ok=True)
    data = kale.encode() if isinstance(kale, str) else kale
    (root / "kale.yaml").write_bytes(data)
    if isinstance(notebook, bytes):
        (root / "tiny.ipynb").write_bytes(notebook)
    else:
        (root / "tiny.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    return root

"""The hand-made hostile corpus through validate, graph, cells, render, run, init and fn
render: every case ends in 0 (valid) or 1/2 with a line naming the file, never an internal
error or a traceback, and a failure writes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hostile import corpus
from tests.hostile.harness import KALE, NOTEBOOK, Outcome, check, invoke, project, tree

SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "ash", "dash"}


def _commands(value: Any) -> list[list[str]]:
    """Every `command`+`args` list in rendered YAML."""
    found = []
    if isinstance(value, dict):
        command = value.get("command")
        if isinstance(command, list) and all(isinstance(c, str) for c in command):
            given = value.get("args")
            args = given if isinstance(given, list) else []
            found.append([*command, *[a for a in args if isinstance(a, str)]])
        for item in value.values():
            found += _commands(item)
    elif isinstance(value, list):
        for item in value:
            found += _commands(item)
    return found


def _shell_scripts(out: Path) -> list[str]:
    """The scripts rendered objects hand to a shell (`sh -c SCRIPT`)."""
    scripts = []
    for path in out.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for command in _commands(document):
                for i, word in enumerate(command[:-1]):
                    if word in SHELLS and command[i + 1] in ("-c", "-ec", "-exc"):
                        scripts.append(command[i + 2] if i + 2 < len(command) else "")
    return scripts


ALL = ("validate", "graph", "cells", "render")


def _all_commands(
    root: Path, located: bool, valid: bool | None, commands: tuple[str, ...] = ALL
) -> list[Outcome]:
    """validate, graph, cells and render (run too when it cannot start a step) on `root`."""
    before = tree(root)
    outcomes = []
    for args in (
        ["validate", "kale.yaml"],
        ["graph", "kale.yaml"],
        ["cells", "kale.yaml"],
        ["render", "kale.yaml", "-o", "out", "--root", "."],
    ):
        if args[0] not in commands:
            continue
        outcome = invoke(args, root)
        # cells lists a notebook without judging the pipeline: it may succeed.
        check(
            outcome,
            valid=None if args[0] == "cells" else valid,
            names="kale.yaml" if args[0] != "cells" else None,
            located=located and args[0] == "validate",
        )
        if outcome.code != 0:
            assert tree(root) == before, f"{args} failed and wrote something"
        outcomes.append(outcome)
    if outcomes[0].code != 0:
        run = invoke(["run", "kale.yaml"], root)
        check(run, valid=False, names="kale.yaml", located=False)
        assert tree(root) == before
    assert not (root / "pwned").exists()
    return outcomes


@pytest.mark.parametrize(
    ("case", "content"), corpus.BROKEN_YAML, ids=[c for c, _ in corpus.BROKEN_YAML]
)
def test_broken_yaml(tmp_path: Path, case: str, content: str | bytes) -> None:
    located = case not in ("binary", "bad-utf8", "utf16-bom", "empty", "only-comment")
    valid = None if case == "merge-key" else False  # YAML 1.1 merge keys are YAML
    _all_commands(project(tmp_path / case, content), located=located, valid=valid)


@pytest.mark.parametrize(
    ("case", "content", "valid"),
    corpus.HOSTILE_VALUES,
    ids=[c for c, _, _ in corpus.HOSTILE_VALUES],
)
def test_hostile_values(tmp_path: Path, case: str, content: str, valid: bool | None) -> None:
    _all_commands(project(tmp_path / case, content), located=valid is False, valid=valid)


@pytest.mark.parametrize(
    ("case", "content"), corpus.SHELL_FIELDS, ids=[c for c, _ in corpus.SHELL_FIELDS]
)
def test_shell_metacharacters_never_reach_a_shell(tmp_path: Path, case: str, content: str) -> None:
    root = project(tmp_path / case, content)
    # graph and cells build no command line; validate and render are what matter here.
    outcomes = _all_commands(root, located=False, valid=None, commands=("validate", "render"))
    if outcomes[-1].code == 0:
        for script in _shell_scripts(root / "out"):
            assert "pwned" not in script, f"{case}: a kale.yaml string reached `sh -c`"


@pytest.mark.parametrize(
    ("case", "book"), corpus.HOSTILE_NOTEBOOKS, ids=[c for c, _ in corpus.HOSTILE_NOTEBOOKS]
)
def test_hostile_notebooks(tmp_path: Path, case: str, book: object) -> None:
    root = project(tmp_path / case, KALE, book)
    before = tree(root)
    for args in (["validate", "kale.yaml"], ["cells", "tiny.ipynb"], ["graph", "kale.yaml"]):
        outcome = invoke(args, root)
        # A notebook's code is judged through the step using it: kale.yaml, cell, line.
        check(outcome, valid=None, names=("tiny.ipynb", "kale.yaml"), located=False)
    init = invoke(["init", "tiny.ipynb", "-o", "new.yaml"], root)
    check(init, valid=None, names=("tiny.ipynb", "new.yaml"), located=False)
    if init.code != 0:
        assert tree(root) == before


def _special(root: Path, name: str, kind: str) -> None:
    target = root / name
    target.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "zero":
        target.symlink_to("/dev/zero")
    elif kind == "dir":
        target.mkdir()
    elif kind == "loop":
        target.symlink_to(target)
    elif kind == "dangling":
        target.symlink_to(root / "nowhere")
    elif kind == "huge":
        with target.open("wb") as handle:
            handle.truncate(64 << 20)  # sparse: 64 MiB of NULs, costs no disk


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir", "loop", "dangling", "huge"])
@pytest.mark.parametrize("name", ["kale.yaml", "tiny.ipynb"])
def test_special_files(tmp_path: Path, name: str, kind: str) -> None:
    root = project(tmp_path / "p")
    _special(root, name, kind)
    before = tree(root)
    for args in (
        ["validate", "kale.yaml"],
        ["validate", "."],
        ["graph", "kale.yaml"],
        ["render", "kale.yaml", "-o", "out", "--root", "."],
        ["cells", name],
    ):
        if kind == "dir" and args == ["validate", "."] and name == "kale.yaml":
            continue  # a directory named kale.yaml is a directory to search
        outcome = invoke(args, root)
        check(outcome, valid=False, names=name, located=False)
        assert tree(root) == before
    if name == "tiny.ipynb":
        init = invoke(["init", name, "-o", "new.yaml"], root)
        check(init, valid=False, names=name, located=False)


@pytest.mark.parametrize(
    ("case", "stdin"), corpus.RESOURCE_LISTS, ids=[c for c, _ in corpus.RESOURCE_LISTS]
)
def test_fn_render_resource_lists(tmp_path: Path, case: str, stdin: str | bytes) -> None:
    outcome = invoke(["fn", "render"], tmp_path, stdin=stdin)
    check(outcome, valid=False, names=None, located=False)
    assert not list(tmp_path.iterdir())


def test_init_refuses_to_overwrite_and_writes_nothing_on_failure(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    before = tree(root)
    outcome = invoke(["init", "tiny.ipynb"], root)
    check(outcome, valid=False, names="kale.yaml", located=False)
    assert tree(root) == before
    fine = invoke(["init", "tiny.ipynb", "-o", "other.yaml"], root)
    check(fine, valid=True, names=None, located=False)
    assert NOTEBOOK["cells"]  # the tiny project is what every case above starts from

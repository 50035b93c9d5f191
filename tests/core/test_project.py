"""Rendering many pipelines at once: the same packages and the same diagnostics, in the same
order, whether they are rendered by forked workers or one after another."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import kfg.render.build
from kfg.core import project as project_module
from kfg.core.load import find_config_files
from kfg.core.project import Project, load_project, render_project
from kfg.render.build import aggregate
from kfg.render.kfp_build import CompileRefused
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.skipif(
    not project_module._can_fork(), reason="pipelines render in workers only where fork is safe"
)


def _repository(tmp_path: Path, copies: int) -> Path:
    """Both examples and `copies` renamed copies of wine, in one repository."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    for name in ("wine", "digits"):
        shutil.copytree(EXAMPLES / name, repo / name, ignore=shutil.ignore_patterns("deploy"))
    for index in range(copies):
        target = repo / f"wine-{index}"
        shutil.copytree(EXAMPLES / "wine", target, ignore=shutil.ignore_patterns("deploy"))
        config = target / "kale.yaml"
        config.write_text(config.read_text().replace("wine-quality", f"wine-{index}"))
    return repo


def _load(repo: Path) -> Project:
    project = load_project(list(find_config_files([repo])), repo)
    assert project.ok, project.diagnostics
    return project


def _record_pids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Make every render leave the id of the process that ran it (workers inherit this)."""
    folder = tmp_path / "pids"
    folder.mkdir()
    original = kfg.render.build.render

    def render(pipeline: Any, *args: Any) -> Any:
        (folder / f"{os.getpid()}-{pipeline.name}").touch()
        return original(pipeline, *args)

    monkeypatch.setattr(kfg.render.build, "render", render)
    return folder


def _pids(folder: Path) -> set[int]:
    return {int(p.name.split("-")[0]) for p in folder.iterdir()}


def test_workers_render_the_same_packages_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, copies=2)
    project = _load(repo)
    pids = _record_pids(monkeypatch, tmp_path)
    parallel = render_project(project, repo, jobs=2)
    assert _pids(pids) and os.getpid() not in _pids(pids)  # workers rendered, not this process
    for stale in pids.iterdir():
        stale.unlink()
    serial = render_project(project, repo, jobs=1)
    assert _pids(pids) == {os.getpid()}

    assert parallel.diagnostics == serial.diagnostics == []
    assert [r.source for r in parallel.rendered] == [r.source for r in serial.rendered]
    assert [r.source for r in serial.rendered] == [
        "digits/kale.yaml",
        "wine/kale.yaml",
        "wine-0/kale.yaml",
        "wine-1/kale.yaml",
    ]
    for mine, theirs in zip(parallel.rendered, serial.rendered, strict=True):
        assert mine.version == theirs.version
        assert mine.objects == theirs.objects
        assert mine.package.files == theirs.package.files  # byte for byte, file for file
    assert aggregate(parallel.rendered, ".").files == aggregate(serial.rendered, ".").files


def test_one_pipeline_renders_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repository(tmp_path, copies=0)
    project = _load(repo)
    only = Project(project.results[:1], project.diagnostics)
    pids = _record_pids(monkeypatch, tmp_path)
    assert render_project(only, repo, jobs=4).rendered
    assert _pids(pids) == {os.getpid()}  # no pool started for one


def test_refusals_among_many_are_reported_alike_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kfp refusing a pipeline that kfg's checks let through, simulated: kfp_build raises
    # CompileRefused for a ValueError or TypeError raised inside kfp.
    repo = _repository(tmp_path, copies=2)
    project = _load(repo)
    original = kfg.render.build.render

    def render(pipeline: Any, *args: Any) -> Any:
        if pipeline.name in ("wine-1", "digits-mlp"):
            raise CompileRefused(f"the kfp compiler refused the pipeline: no {pipeline.name}")
        return original(pipeline, *args)

    monkeypatch.setattr(kfg.render.build, "render", render)
    parallel = render_project(project, repo, jobs=2)
    serial = render_project(project, repo, jobs=1)
    assert parallel.diagnostics == serial.diagnostics
    assert not parallel.ok and parallel.rendered == [] == serial.rendered
    shown = [(d.file, d.line, d.code, d.message) for d in parallel.diagnostics]
    assert shown == [
        (
            os.path.relpath(repo / "digits" / "kale.yaml"),
            5,
            "compile-refused",
            "the kfp compiler refused the pipeline: no digits-mlp",
        ),
        (
            os.path.relpath(repo / "wine-1" / "kale.yaml"),
            5,
            "compile-refused",
            "the kfp compiler refused the pipeline: no wine-1",
        ),
    ]


def test_a_bug_in_a_worker_is_raised_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repository(tmp_path, copies=1)
    project = _load(repo)

    def render(pipeline: Any, *args: Any) -> Any:
        raise RuntimeError(f"bug while rendering {pipeline.name}")

    monkeypatch.setattr(kfg.render.build, "render", render)
    with pytest.raises(RuntimeError, match="bug while rendering"):
        render_project(project, repo, jobs=2)
    assert project_module._WORK == []  # nothing of this render is kept for the next


def test_the_cli_renders_with_workers_the_same_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kfg.cli.app import app

    repo = _repository(tmp_path, copies=1)
    runner = CliRunner()
    outputs = {}
    for jobs in ("1", "2"):
        target = tmp_path / f"deploy-{jobs}"
        done = runner.invoke(app, ["render", str(repo), "-o", str(target), "-j", jobs])
        assert done.exit_code == 0, done.output
        outputs[jobs] = {
            p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()
        }
    assert outputs["1"] == outputs["2"] and len(outputs["1"]) > 20

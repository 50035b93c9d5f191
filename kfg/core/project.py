"""Load, check, analyse, render: the one path every command takes, with all its findings.

`kfg validate`, `kfg render`, `kfg diff` and `kfg fn render` used to check different things:
whether two kale.yaml files define the same pipeline, or two pipelines render the same
object, was known only to `kfg render`. Every command now goes through `load_project` (and
`render_project` when it renders), and only formats the `Project` it gets back. Problems
between files are diagnostics like any other, placed on the line they are about.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfg.core.load import LoadResult, load_pipeline, repository_root
from kfg.diagnostics import Diagnostic, Severity, has_errors

if TYPE_CHECKING:
    from kfg.analysis.dataflow import Flow
    from kfg.config.model import Pipeline
    from kfg.notebook.reader import Notebook
    from kfg.render.build import Rendered
    from kfg.render.kfp_build import CompileRefused


@dataclass(frozen=True)
class Source:
    """A kale.yaml: where it is (or would be), and its text when it is not read from disk
    (a ResourceList item, a proposal of `kfg init`)."""

    path: Path
    text: str | None = None


@dataclass
class Project:
    results: list[LoadResult]
    diagnostics: list[Diagnostic]  # every file's findings and those between files, sorted
    rendered: list[Rendered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def valid(self) -> list[LoadResult]:
        return [r for r in self.results if r.ok and r.pipeline is not None]


def load_project(sources: Sequence[Path | Source], root: Path | None = None) -> Project:
    """Check every kale.yaml completely, then what they must not share."""
    results = []
    for item in sources:
        source = item if isinstance(item, Source) else Source(item)
        results.append(load_pipeline(source.path, root=root, text=source.text))
    diagnostics = [d for r in results for d in r.diagnostics] + _shared_names(results)
    return Project(results, sorted(diagnostics, key=Diagnostic.sort_key))


def render_project(
    project: Project,
    root: Path | None = None,
    *,
    launcher_image: str | None = None,
    jobs: int | None = None,
) -> Project:
    """Render every pipeline of a valid project; imports kfp. Objects two pipelines would
    both render are errors: kustomize cannot hold both, and one would overwrite the other.

    Pipelines are independent, so several are rendered by up to `jobs` processes (default:
    one per CPU this process may run on); the result is the same, in the same order, as
    rendering them one after another.
    """
    if not project.ok or not project.results:
        return project
    from kfg.render.kfp_build import CompileRefused  # imports kfp, before any worker forks

    repo = (root or repository_root(project.results[0].path.parent)).resolve()
    valid = project.valid()
    work: list[_Work] = []
    for result in valid:
        assert result.pipeline and result.flow and result.notebook
        pipeline = result.pipeline
        if launcher_image:
            pipeline = replace(pipeline, launcher=replace(pipeline.launcher, image=launcher_image))
        work.append((pipeline, result.flow, result.notebook, repo))
    rendered: list[Rendered] = []
    problems: list[Diagnostic] = []
    for result, outcome in zip(valid, _render_all(work, jobs), strict=True):
        if isinstance(outcome, CompileRefused):
            problems.append(_at(result, ("metadata", "name"), "compile-refused", str(outcome)))
        else:
            rendered.append(outcome)
    problems += _shared_objects(project, rendered)
    diagnostics = sorted(project.diagnostics + problems, key=Diagnostic.sort_key)
    return Project(project.results, diagnostics, [] if has_errors(problems) else rendered)


_Work = tuple["Pipeline", "Flow", "Notebook", Path]
# What the forked workers render: set in the parent just before they fork, so they inherit
# it (and everything the parent imported, kfp first) instead of receiving it pickled.
_WORK: list[_Work] = []


def _render_one(index: int) -> Rendered | CompileRefused:
    """Render one pipeline; kfp refusing it is a result (a diagnostic), not a failure."""
    from kfg.render.build import render
    from kfg.render.kfp_build import CompileRefused

    try:
        return render(*_WORK[index])
    except CompileRefused as exc:
        return exc  # pickled as its class and message


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _can_fork() -> bool:
    """Forking copies only the calling thread: safe in a single-threaded process, on Linux
    (macOS system libraries may not survive a fork; there, and on Windows, pipelines render
    one after another)."""
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


def _render_all(work: list[_Work], jobs: int | None) -> list[Rendered | CompileRefused]:
    global _WORK
    workers = min(len(work), jobs if jobs is not None else usable_cpus())
    _WORK = work
    try:
        if workers < 2 or not _can_fork():
            return [_render_one(index) for index in range(len(work))]
        # Forked workers start with kfp already imported: a fresh interpreter (spawn) would
        # spend about a second importing it in each. One pipeline per task balances the
        # load; map() returns the results in the order of `work`.
        import multiprocessing  # about 20 ms to import: only when it is used

        pool = multiprocessing.get_context("fork").Pool(workers)
        try:
            results = pool.map(_render_one, range(len(work)), chunksize=1)
        except BaseException:
            pool.terminate()
            raise
        else:
            pool.close()
        finally:
            pool.join()  # the workers' CPU time is then counted as this process's children
        return results
    finally:
        _WORK = []


def _at(result: LoadResult, path: tuple[Any, ...], code: str, message: str) -> Diagnostic:
    pos = result.positions.of(path) if result.positions is not None else None
    return Diagnostic(
        Severity.ERROR,
        code,
        message,
        result.display,
        pos.line if pos else 1,
        pos.column if pos else 1,
        ".".join(str(p) for p in path),
    )


def _shared_names(results: list[LoadResult]) -> list[Diagnostic]:
    first: dict[str, LoadResult] = {}
    found = []
    for result in results:
        if result.pipeline is None:
            continue
        name = result.pipeline.name
        if name in first:
            found.append(
                _at(
                    result,
                    ("metadata", "name"),
                    "duplicate-pipeline",
                    f"pipeline `{name}` is also defined by {first[name].display}; each"
                    " kale.yaml needs a pipeline name of its own",
                )
            )
        else:
            first[name] = result
    return found


def aggregate_conflicts(project: Project) -> list[Diagnostic]:
    """Pipelines that cannot share one package: the aggregate's root holds the stage
    directories, so a pipeline may not be named after one of them."""
    from kfg.render.build import STAGES

    return [
        _at(
            result,
            ("metadata", "name"),
            "reserved-name",
            f"a pipeline named `{result.pipeline.name}` cannot share a package with others: its"
            f" root holds the stages {' and '.join(STAGES)}; rename it, or render this"
            " kale.yaml on its own",
        )
        for result in project.valid()
        if result.pipeline is not None and result.pipeline.name in STAGES
    ]


def _shared_objects(project: Project, rendered: list[Rendered]) -> list[Diagnostic]:
    by_source = {r.pipeline.source: r for r in project.valid() if r.pipeline is not None}
    owners: dict[tuple[str, str, str], Rendered] = {}
    found = []
    for item in rendered:
        for obj in item.objects:
            meta = obj["metadata"]
            key = (obj["kind"], meta.get("namespace", ""), meta["name"])
            owner = owners.setdefault(key, item)
            if owner is not item and owner.source != item.source:
                found.append(
                    _at(
                        by_source[item.pipeline.source],
                        ("metadata", "name"),
                        "duplicate-object",
                        f"renders {key[0]} `{key[2]}`, as {owner.source} does; kustomize"
                        " cannot hold both (name a different claim, version or account)",
                    )
                )
    return found

"""Load, check, analyse, render: the one path every command takes, with all its findings.

`kfg validate`, `kfg render`, `kfg diff` and `kfg fn render` used to check different things:
whether two kale.yaml files define the same pipeline, or two pipelines render the same
object, was known only to `kfg render`. Every command now goes through `load_project` (and
`render_project` when it renders), and only formats the `Project` it gets back. Problems
between files are diagnostics like any other, placed on the line they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfg.core.load import LoadResult, load_pipeline, repository_root
from kfg.diagnostics import Diagnostic, Severity, has_errors

if TYPE_CHECKING:
    from kfg.render.build import Rendered


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
    project: Project, root: Path | None = None, *, launcher_image: str | None = None
) -> Project:
    """Render every pipeline of a valid project; imports kfp. Objects two pipelines would
    both render are errors: kustomize cannot hold both, and one would overwrite the other."""
    if not project.ok or not project.results:
        return project
    from kfg.render.build import render
    from kfg.render.kfp_build import CompileRefused

    repo = (root or repository_root(project.results[0].path.parent)).resolve()
    rendered: list[Rendered] = []
    problems: list[Diagnostic] = []
    for result in project.valid():
        assert result.pipeline and result.flow and result.notebook
        pipeline = result.pipeline
        if launcher_image:
            pipeline = replace(pipeline, launcher=replace(pipeline.launcher, image=launcher_image))
        try:
            rendered.append(render(pipeline, result.flow, result.notebook, repo))
        except CompileRefused as exc:
            problems.append(_at(result, ("metadata", "name"), "compile-refused", str(exc)))
    problems += _shared_objects(project, rendered)
    diagnostics = sorted(project.diagnostics + problems, key=Diagnostic.sort_key)
    return Project(project.results, diagnostics, [] if has_errors(problems) else rendered)


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

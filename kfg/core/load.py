"""Load a kale.yaml: every stage of checking, in order, collecting all findings.

The stages are: read and decode, YAML (duplicate keys, hostile input), the JSON Schema,
the notebook (present, inside the repository, a real notebook), the cell map, and the
semantic checks. A later stage runs only when the earlier ones give it trustworthy input,
so one mistake is reported once, at its cause.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.analysis.dataflow import Flow, Problem, analyse
from kfg.config import checks, schema
from kfg.config.cellmap import CellMap, map_cells
from kfg.config.findings import Findings
from kfg.config.model import Pipeline, build
from kfg.config.schedules import check_schedules
from kfg.config.schemacheck import whole_numbers
from kfg.diagnostics import Diagnostic, Severity, did_you_mean, has_errors
from kfg.files.inputfile import InputFileError, read_bounded
from kfg.files.yamlsource import MAX_BYTES, Positions, YamlError, load
from kfg.notebook.reader import Notebook, NotebookError, read_notebook
from kfg.render.size import size_warning

CONFIG_NAMES = ("kale.yaml", "kale.yml")
CONFIG_SUFFIXES = (".kale.yaml", ".kale.yml")
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".kfg",
    ".tox",
    "build",
    "dist",
}


@dataclass
class LoadResult:
    path: Path
    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    data: dict[str, Any] | None = None
    notebook: Notebook | None = None
    cellmap: CellMap | None = None
    pipeline: Pipeline | None = None
    flow: Flow | None = None
    positions: Positions | None = None  # where each key and value of the file stands

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def display_path(path: Path) -> str:
    """The path relative to the working directory when it is below it, as users typed it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def repository_root(start: Path) -> Path:
    """The enclosing git work tree, or `start` itself outside of one."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def is_config_file(path: Path) -> bool:
    return path.name in CONFIG_NAMES or path.name.endswith(CONFIG_SUFFIXES)


def find_config_files(paths: Iterable[Path]) -> Iterator[Path]:
    """kale.yaml files: the files given, and those found below the directories given."""
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(
                    d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".")
                )
                for name in sorted(filenames):
                    if is_config_file(Path(name)):
                        yield Path(dirpath) / name
        else:
            yield path


def _read_text(path: Path, findings: Findings) -> str | None:
    try:
        raw = read_bounded(path, MAX_BYTES)
    except InputFileError as exc:
        small = "; kale.yaml files are small" if exc.code == "too-large" else ""
        findings.error((), exc.code, exc.message + small)
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        findings.items.append(
            Diagnostic(
                Severity.ERROR,
                "not-utf8",
                f"not UTF-8 text (byte {exc.start})",
                findings.file,
                line,
            )
        )
        return None


def _locate_notebook(
    result: LoadResult, spec: dict[str, Any], findings: Findings, root: Path
) -> Notebook | None:
    path = ("spec", "notebook")
    relative = spec["notebook"]
    if os.path.isabs(relative):
        findings.error(path, "notebook-path", "the notebook path must be relative to this file")
        return None
    if "\0" in relative:
        findings.error(path, "notebook-path", "the notebook path holds a NUL character")
        return None
    candidate = Path(os.path.realpath(result.path.parent / relative))  # no raise on a loop
    if not candidate.is_relative_to(root):
        findings.error(
            path,
            "notebook-outside-repo",
            f"`{relative}` resolves outside the repository ({display_path(root)});"
            " rendering must depend only on committed files",
        )
        return None
    if not candidate.is_file():
        siblings = (
            [p.name for p in candidate.parent.glob("*.ipynb") if p.name != candidate.name]
            if candidate.parent.is_dir()
            else []
        )
        if candidate.is_dir():
            reason = "is a directory"
        elif os.path.lexists(result.path.parent / relative):
            reason = "is not a regular file (a special file, or a link that leads nowhere)"
        else:
            reason = "does not exist"
        findings.error(
            path,
            "notebook-missing",
            f"notebook `{relative}` {reason}{did_you_mean(candidate.name, siblings)}",
        )
        return None
    try:
        notebook = read_notebook(candidate)
    except NotebookError as exc:
        result.diagnostics.append(
            Diagnostic(
                Severity.ERROR,
                "not-a-notebook",
                exc.message,
                display_path(candidate),
                exc.line,
                exc.column,
            )
        )
        findings.error(
            path,
            "not-a-notebook",
            f"`{relative}` cannot be read as a notebook (see the error above)",
        )
        return None
    language = notebook.language
    if language is not None and language not in ("python", "python3", "ipython"):
        findings.error(
            path,
            "not-python",
            f"`{relative}` is a {language} notebook (its kernel's language); kfg runs the"
            " cells of Python notebooks",
        )
        return None
    return notebook


def load_pipeline(path: Path, *, root: Path | None = None, text: str | None = None) -> LoadResult:
    """Check one kale.yaml completely; `result.pipeline` is set when it is valid.

    `text` checks a kale.yaml that is not on disk yet (as `kfg init` does before writing);
    `path` still says where it would live, which relative notebook paths depend on.
    """
    result = LoadResult(path=path, display=display_path(path))
    findings = Findings(result.display, Positions())
    try:
        _load(result, findings, root, text)
    finally:
        result.diagnostics = sorted(result.diagnostics + findings.items, key=Diagnostic.sort_key)
    return result


def _load(result: LoadResult, findings: Findings, root: Path | None, text: str | None) -> None:
    if text is None:
        text = _read_text(result.path, findings)
    if text is None:
        return
    try:
        document = load(text)
    except YamlError as exc:
        pos = exc.pos
        findings.items.append(
            Diagnostic(
                Severity.ERROR,
                "yaml",
                exc.message,
                findings.file,
                pos.line if pos else 1,
                pos.column if pos else 1,
            )
        )
        return
    findings.positions = result.positions = document.positions
    if not isinstance(document.data, dict):
        findings.error(
            (),
            "wrong-type",
            "expected a mapping (a NotebookPipeline object) at the top of the file",
        )
        return
    findings.items.extend(schema.validate(document.data, document.positions, findings.file))
    if findings.failed:
        return
    data: dict[str, Any] = whole_numbers(document.data, schema.load_schema())
    result.data = data
    spec = data["spec"]
    repo = (root or repository_root(result.path.parent)).resolve()

    notebook = _locate_notebook(result, spec, findings, repo)
    result.notebook = notebook
    cellmap = map_cells(spec, notebook, findings) if notebook else None
    result.cellmap = cellmap

    checks.check_steps(spec, findings, cellmap)
    checks.check_resources(spec, findings)
    checks.check_tolerations(spec, findings)
    checks.check_gpus(spec, findings)
    checks.check_volumes(spec, findings)
    checks.check_packages(spec, findings)
    parameters = checks.parameters_of(spec, notebook, cellmap, findings)
    defined = (
        checks.step_definitions(spec, notebook, cellmap, findings) if notebook and cellmap else None
    )
    if notebook and cellmap:
        checks.check_imports(spec, notebook, cellmap, findings)
    reporters = checks.check_metrics(spec, findings, defined)
    checks.check_tuning(spec, findings, parameters)
    checks.check_algorithm_settings(spec, findings)
    check_schedules(data, findings, parameters)

    if (
        findings.failed
        or result.diagnostics
        or notebook is None
        or cellmap is None
        or parameters is None
    ):
        return
    result.pipeline = build(
        data,
        source=result.path.resolve(),
        notebook=notebook.path,
        cellmap=cellmap,
        parameters=parameters,
        metric_steps=reporters,
    )
    result.flow = analyse(result.pipeline, notebook)
    steps = {s["name"]: i for i, s in enumerate(spec["steps"])}
    for problem in result.flow.problems:
        _report(problem, steps, findings)
    if not findings.failed:
        too_big = size_warning(result.pipeline, result.flow, notebook)
        if too_big:
            findings.add(Severity.WARNING, ("spec", "steps"), "pipeline-size", too_big)


def _report(problem: Problem, steps: dict[str, int], findings: Findings) -> None:
    """Data-flow problems are placed on the `cells` of the step (or the prelude) they are in."""
    where = (
        ("spec", "prelude")
        if problem.step is None
        else ("spec", "steps", steps[problem.step], problem.field)
    )
    findings.add(problem.severity, where, problem.code, problem.message)


def config_for_notebook(notebook: Path) -> Path | None:
    """The kale.yaml beside `notebook` whose `spec.notebook` points at it, if there is one."""
    target = notebook.resolve()
    for candidate in sorted(notebook.parent.iterdir()):
        if not candidate.is_file() or not is_config_file(candidate):
            continue
        try:
            data = load(read_bounded(candidate, MAX_BYTES).decode("utf-8-sig")).data
        except (InputFileError, UnicodeDecodeError, YamlError):
            continue
        spec = data.get("spec") if isinstance(data, dict) else None
        relative = spec.get("notebook") if isinstance(spec, dict) else None
        if isinstance(relative, str) and (candidate.parent / relative).resolve() == target:
            return candidate
    return None

"""`kfg fn render` as a KRM function: a ResourceList in, a ResourceList out.

It follows the KRM Functions Specification (config.kubernetes.io/v1): NotebookPipelines
come from `functionConfig` (a kale.yaml, or a ConfigMap whose `data.paths` names kale.yaml
files) and from the input `items`; their rendered objects are added to `items` with
`internal.config.kubernetes.io/path` placing them beside their kale.yaml, replacing what a
previous run rendered from the same file. Every other item passes through untouched, with
its comments (the list is read and written with ruamel.yaml's round-trip mode).
Validation findings become `results`; any error makes the exit status 1. Notebooks are read
from the working directory, so run the function with the package mounted (`kpt fn eval
--exec`, or `--mount` for the container).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfg.diagnostics import Diagnostic, Severity
from kfg.files.yamlsource import YamlError, check_limits

RESOURCE_LIST = ("config.kubernetes.io/v1", "ResourceList")
PATH = "internal.config.kubernetes.io/path"
INDEX = "internal.config.kubernetes.io/index"
LEGACY_PATH = "config.kubernetes.io/path"
LEGACY_INDEX = "config.kubernetes.io/index"
SOURCE = "kfg.dev/source"
RENDERED_DIR = "rendered"
# Package files that are not Kubernetes objects, or that kpt keeps in the package itself.
# A ResourceList carries a whole kpt package, rendered pipelines included, so it may be far
# larger than one kale.yaml; these bounds keep a hostile stdin from costing minutes.
MAX_INPUT_BYTES = 8 << 20
MAX_INPUT_NODES = 1_000_000
SKIPPED_FILES = ("Kptfile", "kustomization.yaml", ".krmignore")
IR_SUFFIX = ".ir.yaml"  # the pipeline's and the tuning version's IR: not Kubernetes objects


@dataclass(frozen=True)
class Target:
    path: Path  # the kale.yaml on disk
    text: str | None  # its content when it came inside the ResourceList


def _yaml() -> Any:
    from ruamel.yaml import YAML

    handler = YAML(typ="rt")
    handler.preserve_quotes = True
    handler.width = 4096
    return handler


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _annotation(item: Any, *names: str) -> str | None:
    annotations = _mapping(_mapping(_mapping(item).get("metadata")).get("annotations"))
    for name in names:
        if name in annotations:
            return str(annotations[name])
    return None


def _result(message: str, severity: str = "error", **where: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"message": message, "severity": severity}
    result.update({k: v for k, v in where.items() if v})
    return result


def _diagnostic_result(d: Diagnostic, package_path: str) -> dict[str, Any]:
    where: dict[str, Any] = {"file": {"path": package_path}}
    if d.field:
        where["field"] = {"path": d.field}
    severity = "error" if d.severity is Severity.ERROR else "warning"
    return _result(f"{d.message} (line {d.line}) [{d.code}]", severity, **where)


def _targets(resources: Any, workdir: Path, results: list[dict[str, Any]]) -> list[Target]:
    targets: list[Target] = []
    config = resources.get("functionConfig")
    if config and not isinstance(config, dict):
        results.append(_result("functionConfig must be a mapping"))
    elif config:
        kind = config.get("kind")
        if kind == "NotebookPipeline":
            where = _annotation(config, PATH, LEGACY_PATH) or "kale.yaml"
            targets.append(Target(workdir / where, _dump(_without_kpt_annotations(config))))
        elif kind == "ConfigMap":
            listed = str((config.get("data") or {}).get("paths", ""))
            for entry in listed.replace(",", "\n").split():
                targets.append(Target(workdir / entry, None))
            if not listed.strip():
                results.append(_result("the ConfigMap functionConfig has no data.paths"))
        else:
            results.append(
                _result(f"functionConfig must be a NotebookPipeline or a ConfigMap, not {kind}")
            )
    items = resources.get("items") or []
    if not isinstance(items, list):
        results.append(_result("items must be a list"))
        items = []
    for item in items:
        if not isinstance(item, dict):
            results.append(_result("every item must be a mapping"))
            continue
        if item.get("kind") == "NotebookPipeline":
            located = _annotation(item, PATH, LEGACY_PATH)
            if located is None:
                results.append(_result("a NotebookPipeline item has no path annotation"))
                continue
            targets.append(Target(workdir / located, _dump(_without_kpt_annotations(item))))
    unique: dict[Path, Target] = {}
    package = workdir.resolve()
    for target in targets:
        resolved = target.path.resolve()
        if not resolved.is_relative_to(package):
            results.append(
                _result(
                    f"{target.path} is outside the package; a function reads only its own files"
                )
            )
            continue
        unique.setdefault(resolved, target)
    return list(unique.values())


def _without_kpt_annotations(item: Any) -> Any:
    """The kale.yaml as its author wrote it: without the path and index annotations kpt adds
    when it reads a package (kept on the item itself, which passes through)."""
    import copy

    clean = copy.deepcopy(item)
    annotations = _mapping(_mapping(clean.get("metadata")).get("annotations"))
    if annotations:
        for key in (PATH, INDEX, LEGACY_PATH, LEGACY_INDEX, "internal.config.kubernetes.io/id"):
            annotations.pop(key, None)
        if not annotations:
            del clean["metadata"]["annotations"]
    return clean


def _dump(node: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(node, buffer)
    return buffer.getvalue()


def process(text: str, workdir: Path) -> tuple[str, int]:
    """The output ResourceList for an input one, and the exit status."""
    from kfg.core.load import display_path, repository_root
    from kfg.core.project import Source, load_project, render_project
    from kfg.render.build import relative_to_root

    handler = _yaml()
    results: list[dict[str, Any]] = []
    resources: Any = None
    try:
        if len(text) > MAX_INPUT_BYTES:
            raise YamlError(f"larger than {MAX_INPUT_BYTES >> 20} MiB")
        check_limits(text, max_nodes=MAX_INPUT_NODES)
        resources = handler.load(text)
    except YamlError as exc:
        where = f" (line {exc.pos.line})" if exc.pos else ""
        results.append(_result(f"stdin is refused: {exc.message}{where}"))
    except Exception as exc:  # ruamel's errors have no common base worth naming
        results.append(_result(f"stdin is not YAML: {exc}"))
    if (
        not isinstance(resources, dict)
        or (
            resources.get("apiVersion"),
            resources.get("kind"),
        )
        != RESOURCE_LIST
    ):
        out: dict[str, Any] = {
            "apiVersion": RESOURCE_LIST[0],
            "kind": RESOURCE_LIST[1],
            "items": [],
        }
        results.append(_result("stdin must be a config.kubernetes.io/v1 ResourceList"))
        out["results"] = results
        return _dump(out), 1

    rendered_items: list[dict[str, Any]] = []
    replaced: set[str] = set()
    root = repository_root(workdir)
    targets = _targets(resources, workdir, results)
    # The function works on what it receives (the KRM functions specification): a kale.yaml
    # that came in the ResourceList is read from there, so an earlier function's change or
    # an inline functionConfig counts; only the notebook, which a ResourceList cannot carry,
    # is read from disk, relative to the kale.yaml's path annotation.
    project = render_project(load_project([Source(t.path, t.text) for t in targets], root), root)
    shown = {display_path(t.path): relative_to_root(t.path, workdir) for t in targets}
    results.extend(_diagnostic_result(d, shown.get(d.file, d.file)) for d in project.diagnostics)
    for item in project.rendered:
        replaced.add(item.source)
        package_path = relative_to_root(item.pipeline.source, workdir)
        base = Path(package_path).parent / RENDERED_DIR / item.pipeline.name
        for name, content in sorted(item.package.files.items()):
            if Path(name).name in SKIPPED_FILES or name.endswith(IR_SUFFIX):
                continue  # the package's and each stage's kustomization, and the IRs
            for index, obj in enumerate(d for d in handler.load_all(content) if d):
                annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
                location = (base / name).as_posix()
                annotations[PATH] = annotations[LEGACY_PATH] = location
                annotations[INDEX] = annotations[LEGACY_INDEX] = str(index)
                rendered_items.append(obj)
    items = resources.get("items")
    kept = [
        item
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
        and (_annotation(item, SOURCE) not in replaced or item.get("kind") == "NotebookPipeline")
    ]
    resources["items"] = kept + rendered_items
    if results:
        resources["results"] = results
    failed = not project.ok or any(r["severity"] == "error" for r in results)
    return _dump(resources), 1 if failed else 0

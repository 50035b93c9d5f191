"""What a pull request changes in the cluster: rendered objects at the base and at HEAD.

Both sides are rendered from their own committed files (the base in a temporary git
worktree), and compared object by object. The summary, in Markdown for a pull-request
comment, shows each changed pipeline's step graph as Mermaid and the objects added,
changed and removed, calling out what matters on a cluster: a new PipelineVersion or
Experiment (the old ones stay, kfg's objects are never pruned).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- kfg-pr-summary -->"
CALLED_OUT = {"PipelineVersion", "Experiment", "VolumeSnapshot"}

ObjectKey = tuple[str, str, str]  # kind, namespace, name


class DiffError(Exception):
    """The base revision cannot be read; the message says why."""


@dataclass
class Side:
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    owners: dict[ObjectKey, str] = field(default_factory=dict)  # object -> pipeline
    graphs: dict[str, str] = field(default_factory=dict)  # pipeline -> Mermaid
    problems: list[str] = field(default_factory=list)


def render_tree(root: Path) -> Side:
    """Render every kale.yaml under `root` in memory."""
    from kfg.analysis.drawing import as_mermaid
    from kfg.config.load import find_config_files, load_pipeline
    from kfg.render.build import relative_to_root, render

    side = Side()
    for config in find_config_files([root]):
        result = load_pipeline(config, root=root)
        if not result.ok or not (result.pipeline and result.flow and result.notebook):
            errors = sum(d.severity.value == "error" for d in result.diagnostics)
            side.problems.append(f"`{relative_to_root(config, root)}` is invalid ({errors} errors)")
            continue
        name = result.pipeline.name
        side.graphs[name] = as_mermaid(name, result.flow)
        for obj in render(result.pipeline, result.flow, result.notebook, root).objects:
            meta = obj["metadata"]
            key = (obj["kind"], meta.get("namespace", ""), meta["name"])
            side.objects[key] = obj
            side.owners[key] = name
    return side


def render_revision(repo: Path, revision: str) -> Side:
    """Render the tree of `revision` from a temporary worktree."""
    # The revision is the user's word: --end-of-options keeps `-f` from being an option,
    # and the worktree is then added at the commit's id, which never starts with a dash.
    spec = f"{revision}^{{commit}}"
    resolved = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options", spec],
        capture_output=True,
        text=True,
    )
    commit = resolved.stdout.strip()
    if resolved.returncode != 0 or not commit:
        raise DiffError(f"`{revision}` is not a commit of the repository at {repo}")
    with tempfile.TemporaryDirectory(prefix="kfg-base-") as scratch:
        tree = Path(scratch) / "base"
        added = subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit],
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            raise DiffError(f"cannot check out `{revision}`: {added.stderr.strip()}")
        try:
            return render_tree(tree)
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
            )


def _canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True)


def summary(base: Side, head: Side) -> str:
    """The pull-request comment, in Markdown."""
    added = sorted(k for k in head.objects if k not in base.objects)
    removed = sorted(k for k in base.objects if k not in head.objects)
    changed = sorted(
        k
        for k in head.objects
        if k in base.objects and _canonical(head.objects[k]) != _canonical(base.objects[k])
    )
    touched: dict[str, list[tuple[str, ObjectKey]]] = {}
    for verb, keys, owners in (
        ("added", added, head.owners),
        ("changed", changed, head.owners),
        ("removed", removed, base.owners),
    ):
        for key in keys:
            touched.setdefault(owners[key], []).append((verb, key))
    lines = [MARKER, "## kfg: what this pull request changes in the cluster", ""]
    if not touched and not head.problems:
        lines.append("No rendered object changes.")
    for problem in head.problems:
        lines.append(f"- :x: {problem}: run `kfg validate`")
    for pipeline in sorted(touched):
        changes = touched[pipeline]
        lines += ["", f"### `{pipeline}`", ""]
        if pipeline in head.graphs:
            lines += ["```mermaid", head.graphs[pipeline].rstrip(), "```", ""]
        lines += ["| change | kind | name |", "|---|---|---|"]
        for verb, (kind, _, name) in changes:
            lines.append(f"| {verb} | {kind} | `{name}` |")
        notes = [
            f"- new {kind} `{name}`"
            if verb == "added"
            else f"- {kind} `{name}` leaves git but"
            " stays on the cluster: kfg marks it never to be pruned"
            for verb, (kind, _, name) in changes
            if verb in ("added", "removed") and kind in CALLED_OUT
        ]
        if notes:
            lines += ["", *notes]
    counts = f"{len(added)} added, {len(changed)} changed, {len(removed)} removed"
    lines += ["", f"Objects: {counts}."]
    return "\n".join(lines) + "\n"

"""What a pull request changes in the cluster: rendered objects at the base and at HEAD.

Both sides are rendered from their own committed files (the base in a temporary git
worktree), and compared object by object. The summary, in Markdown for a pull-request
comment, shows each changed pipeline's step graph as Mermaid and the objects added,
changed and removed, calling out what matters on a cluster: a new PipelineVersion or
Experiment (the old ones stay, kfg's objects are never pruned), and above all a merge that
starts a new Katib Experiment, which costs maxTrials pipeline runs, with the reason.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.errors import KfgError

MARKER = "<!-- kfg-pr-summary -->"
CALLED_OUT = {"PipelineVersion", "Experiment", "VolumeSnapshot"}

ObjectKey = tuple[str, str, str]  # kind, namespace, name


class DiffError(KfgError):
    """The base revision cannot be read; the message says why."""


@dataclass
class Side:
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    owners: dict[ObjectKey, str] = field(default_factory=dict)  # object -> pipeline
    graphs: dict[str, str] = field(default_factory=dict)  # pipeline -> Mermaid
    problems: list[str] = field(default_factory=list)


def render_tree(root: Path) -> Side:
    """Render every kale.yaml under `root` in memory, as `kfg render` would."""
    from kfg.analysis.drawing import as_mermaid
    from kfg.core.load import find_config_files
    from kfg.core.project import load_project, render_project
    from kfg.render.build import relative_to_root

    side = Side()
    project = render_project(load_project(list(find_config_files([root])), root), root)
    errors: dict[str, int] = {}
    for d in project.diagnostics:
        if d.severity.value == "error":
            errors[d.file] = errors.get(d.file, 0) + 1
    for result in project.results:
        if result.display in errors:
            count = errors[result.display]
            side.problems.append(
                f"`{relative_to_root(result.path, root)}` is invalid ({count} errors)"
            )
    if not project.ok:
        return side  # kfg render would write nothing either
    for item in project.rendered:
        name = item.pipeline.name
        valid = next(r for r in project.results if r.pipeline and r.pipeline.name == name)
        assert valid.flow is not None
        side.graphs[name] = as_mermaid(name, valid.flow)
        for obj in item.objects:
            key = _key(obj)
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


def _key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def _canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True)


# What differs between two Experiments of one pipeline, in the words of kale.yaml.
_SPEC_REASONS = (
    ("objective", "the objective"),
    ("algorithm", "the algorithm or its settings"),
    ("earlyStopping", "early stopping"),
    ("parameters", "the search space"),
)
_COUNTS = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")


def _experiments(side: Side, pipeline: str) -> list[dict[str, Any]]:
    return [
        obj
        for key, obj in sorted(side.objects.items())
        if key[0] == "Experiment" and side.owners[key] == pipeline
    ]


def _trial_args(experiment: dict[str, Any]) -> list[str]:
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    args: list[str] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def _trial_version(experiment: dict[str, Any]) -> str:
    args = _trial_args(experiment)
    return args[args.index("--version") + 1] if "--version" in args else "?"


def _annotation(experiment: dict[str, Any], key: str) -> str | None:
    value = experiment["metadata"].get("annotations", {}).get(key)
    return None if value is None else str(value)


def _reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why `new` is a new Experiment rather than `old` kept."""
    from kfg.render.katib import REVISION_ANNOTATION, STEPS_ANNOTATION

    before, after = old["spec"], new["spec"]
    reasons = [text for key, text in _SPEC_REASONS if before.get(key) != after.get(key)]
    if any(before.get(k) != after.get(k) for k in _COUNTS):
        reasons.append("the trial counts (Katib refuses to change a finished Experiment)")
    if _trial_version(old) != _trial_version(new):
        steps = (_annotation(new, STEPS_ANNOTATION) or "").replace(",", ", ")
        reasons.append(
            f"the steps its metrics depend on ({steps}) or the pipeline parameters"
            if steps
            else "the steps its metrics depend on or the pipeline parameters"
        )
    elif before.get("trialTemplate") != after.get("trialTemplate"):
        reasons.append("the trial Job (launcher image, endpoint, service account or timeout)")
    if _annotation(old, REVISION_ANNOTATION) != _annotation(new, REVISION_ANNOTATION):
        reasons.append("`tuning.revision`")
    known = {key for key, _ in _SPEC_REASONS} | set(_COUNTS) | {"trialTemplate"}
    if not reasons and any(
        before.get(k) != after.get(k) for k in set(before) | set(after) if k not in known
    ):
        reasons.append("how kfg renders the Experiment")
    return reasons


def _sweep_notes(pipeline: str, base: Side, head: Side) -> list[str]:
    """Loud lines for a merge that starts an Experiment; a quiet one when it keeps running."""
    old = {e["metadata"]["name"]: e for e in _experiments(base, pipeline)}
    new = {e["metadata"]["name"]: e for e in _experiments(head, pipeline)}
    notes = []
    for name, experiment in new.items():
        spec = experiment["spec"]
        trials, parallel = spec["maxTrialCount"], spec["parallelTrialCount"]
        if name in old:
            continue
        lead = (
            f"> :warning: **This merge starts a new Experiment `{name}` of {trials} trials**"
            f" ({parallel} at a time), each a run of `{_trial_version(experiment)}`"
        )
        previous = [e for n, e in old.items() if n not in new]
        if not previous:
            notes.append(lead + ".")
            continue
        reasons = _reasons(previous[0], experiment)
        because = f", because {_join(reasons)} changed" if reasons else ""
        notes += [
            lead + because + ".",
            ">",
            f"> The previous Experiment `{previous[0]['metadata']['name']}` stays on the cluster"
            " with its trials (kfg never prunes Experiments); if it is still running it runs"
            " to its end: `kubectl delete experiment` stops it.",
        ]
    new_version = any(
        k[0] == "PipelineVersion" and head.owners[k] == pipeline and k not in base.objects
        for k in head.objects
    )
    from kfg.render.katib import STEPS_ANNOTATION

    for name in sorted(set(old) & set(new)) if new_version else []:
        steps = (_annotation(new[name], STEPS_ANNOTATION) or "").replace(",", ", ")
        notes.append(
            f"- Experiment `{name}` carries on unchanged: this change does not touch the steps"
            f" its metrics depend on ({steps}), so no new trials start."
        )
    return notes


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
    sweeps = {p: _sweep_notes(p, base, head) for p in sorted(touched)}
    starting = [head.objects[k] for k in added if k[0] == "Experiment"]
    if starting:
        runs = sum(e["spec"]["maxTrialCount"] for e in starting)
        lines += [
            f"**:warning: This merge starts {len(starting)} new Katib"
            f" Experiment{'s' if len(starting) > 1 else ''}: {runs} pipeline runs.**",
            "",
        ]
    if not touched and not head.problems:
        lines.append("No rendered object changes.")
    for problem in head.problems:
        lines.append(f"- :x: {problem}: run `kfg validate`")
    for pipeline in sorted(touched):
        changes = touched[pipeline]
        lines += ["", f"### `{pipeline}`", ""]
        if sweeps[pipeline]:
            lines += [*sweeps[pipeline], ""]
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

"""Translate a notebook tagged for Kale into kale.yaml, keeping Kale's semantics.

Kale's rules, as its notebook processor applies them: code cells are read in order; `skip`
drops a cell; `imports` and `functions` cells are prepended to every step; the
`pipeline-parameters` cells define parameters and the `pipeline-metrics` cells print the
metrics; `step:NAME` (or the older `block:NAME`) starts or continues a step and `prev:NAME`
orders it after another; an untagged code cell joins the block of the tagged cell before it
(and is dropped when no tagged cell precedes it). `limit:`, `image:`, `annotation:`,
`label:`, `secret:` and `cache:` tags configure the step they sit on, and the notebook's
`kubeflow_notebook` metadata carries the pipeline name, volumes and Katib settings.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from kfg.config.algorithms import ALGORITHMS, grid_size
from kfg.config.model import DEFAULT_MAX_TRIALS
from kfg.kube.names import dns_label, unique
from kfg.notebook.cellrefs import compress
from kfg.notebook.reader import Cell, Notebook
from kfg.pysource.parameters import Parameter, parse_parameters, python_type
from kfg.pysource.source import bound_names, parse_cell

SPECIAL = ("skip", "imports", "functions", "pipeline-parameters", "pipeline-metrics")
_STEP = re.compile(r"^(?:step|block):([_a-z][_a-z0-9]*)?$")
_CONFIG = re.compile(r"^(prev|limit|annotation|label|image|secret|cache):(.+)$")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
METADATA_KEY = "kubeflow_notebook"


def is_tagged(notebook: Notebook) -> bool:
    """Whether any cell carries a tag of Kale's language."""
    return any(
        tag in SPECIAL or _STEP.match(tag) or tag.startswith("prev:")
        for cell in notebook.cells
        for tag in cell.tags
    )


class _Translation:
    def __init__(self, notebook: Notebook, notes: list[str]) -> None:
        self.notebook = notebook
        self.notes = notes
        self.metadata: dict[str, Any] = notebook.metadata.get(METADATA_KEY) or {}
        if not isinstance(self.metadata, dict):
            self.metadata = {}
        self.prelude: list[int] = []
        self.skip: list[int] = []
        self.parameter_cells: list[int] = []
        self.metric_cells: list[int] = []
        self.steps: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.taken: set[str] = set()
        self.defaults = self._settings(self.metadata.get("steps_defaults") or [], "steps_defaults")

    def step_name(self, kale_name: str) -> str:
        if kale_name not in self.names:
            self.names[kale_name] = unique(dns_label(kale_name), self.taken)
        return self.names[kale_name]

    def _settings(self, tags: list[Any], where: str) -> dict[str, Any]:
        """Step settings from `limit:`, `image:`, `annotation:`... tags."""
        settings: dict[str, Any] = {}
        for tag in tags:
            match = _CONFIG.match(tag) if isinstance(tag, str) else None
            if not match or match.group(1) == "prev":
                continue
            kind, rest = match.groups()
            if kind in ("annotation", "label"):
                key, _, value = rest.partition(":")
                settings.setdefault(f"{kind}s", {})[key] = value
            elif kind == "image":
                settings["image"] = rest
            elif kind == "cache":
                settings["caching"] = rest.strip().lower() not in (
                    "false",
                    "no",
                    "off",
                    "0",
                    "disabled",
                )
            elif kind == "secret":
                parts = rest.split(":")
                if len(parts) < 2 or not all(parts):
                    self.notes.append(f"{where}: `{tag}` needs secret:NAME:KEY[:ENV]; left out")
                    continue
                entry = {"secret": parts[0], "key": parts[1]}
                if len(parts) > 2:
                    entry["env"] = parts[2]
                settings.setdefault("secrets", []).append(entry)
            elif kind == "limit":
                resource, _, value = rest.partition(":")
                self._limit(settings, resource, value, where)
        return settings

    def _limit(self, settings: dict[str, Any], resource: str, value: str, where: str) -> None:
        resources = settings.setdefault("resources", {})
        if resource in ("cpu", "memory"):
            resources[resource] = {"limit": value}
        elif resource in GPU_RESOURCES:
            try:
                resources["gpu"] = {"count": int(value), "type": resource}
            except ValueError:
                self.notes.append(f"{where}: GPU limit `{value}` is not a whole number; left out")
        else:
            self.notes.append(
                f"{where}: limit on `{resource}` has no kale.yaml equivalent; left out"
            )
        if not resources:
            del settings["resources"]

    def cell(self, cell: Cell, previous: str | None) -> str | None:
        """Place one code cell; returns the role that untagged cells after it join."""
        special = next((t for t in cell.tags if t in SPECIAL), None)
        step_tags = [m.group(1) for t in cell.tags if (m := _STEP.match(t)) and m.group(1)]
        where = f"cell {cell.position}"
        if special == "skip":
            self.skip.append(cell.position)
            return previous
        if special is not None:
            target = {
                "imports": self.prelude,
                "functions": self.prelude,
                "pipeline-parameters": self.parameter_cells,
                "pipeline-metrics": self.metric_cells,
            }[special]
            target.append(cell.position)
            return special
        if step_tags:
            if len(step_tags) > 1:
                self.notes.append(
                    f"{where}: several step tags; using `{step_tags[0]}`"
                    " as Kale does not allow more"
                )
            name = self.step_name(step_tags[0])
            step = self.steps.setdefault(name, {"name": name, "cells": []})
            step["cells"].append(cell.position)
            for tag in cell.tags:
                if tag.startswith("prev:"):
                    after = step.setdefault("after", [])
                    prev = tag[5:]
                    if prev not in self.names or self.names[prev] == name:
                        self.notes.append(
                            f"{where}: `prev:{prev}` names no step defined above it; left out"
                        )
                    elif self.names[prev] not in after:
                        after.append(self.names[prev])
            for key, value in self._settings(list(cell.tags), where).items():
                if isinstance(value, dict):
                    step.setdefault(key, {}).update(value)
                elif isinstance(value, list):
                    step.setdefault(key, []).extend(value)
                else:
                    step[key] = value
            return f"step:{name}"
        if previous is None:
            self.skip.append(cell.position)
            self.notes.append(
                f"{where}: untagged and before any tagged cell, so Kale leaves it out;"
                " listed in skip"
            )
            return None
        if previous.startswith("step:"):
            self.steps[previous[5:]]["cells"].append(cell.position)
        else:
            return self.cell(
                Cell(cell.position, cell.cell_type, cell.source, cell.id, (previous,)), previous
            )
        return previous

    def metrics(self) -> list[dict[str, str]]:
        """Metrics from the `print(variable)` lines of the pipeline-metrics cells."""
        found: list[dict[str, str]] = []
        for position in self.metric_cells:
            tree = parse_cell(self.notebook.cell(position).source)
            if not isinstance(tree, ast.Module):
                self.notes.append(
                    f"cell {position}: pipeline-metrics cell does not parse; no metrics read"
                )
                continue
            for statement in tree.body:
                call = statement.value if isinstance(statement, ast.Expr) else None
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "print"
                    and len(call.args) == 1
                    and isinstance(call.args[0], ast.Name)
                ):
                    variable = call.args[0].id
                    if all(m["variable"] != variable for m in found):
                        found.append({"name": metric_name(variable), "variable": variable})
                else:
                    self.notes.append(
                        f"cell {position}, line {statement.lineno}: pipeline-metrics cells hold"
                        " `print(variable)` lines only; line left out"
                    )
        return found

    def parameters(self) -> tuple[dict[str, Any] | None, list[Parameter]]:
        cells = self.parameter_cells
        if not cells:
            return None, []
        params: list[Parameter] = []
        for position in cells:
            found, problems = parse_parameters(self.notebook.cell(position).source)
            params.extend(found)
            for problem in problems:
                self.notes.append(
                    f"cell {position}, line {problem.line}: pipeline-parameters: {problem.message}"
                )
        if not params:
            self.notes.append(
                f"the pipeline-parameters cells {cells} assign no parameters; left out"
            )
            return None, []
        code_between = [
            c.position
            for c in self.notebook.cells[cells[0] - 1 : cells[-1]]
            if c.is_code and not c.is_blank
        ]
        if all(p in cells for p in code_between):
            ref: int | str = (
                compress(cells)[0] if len(compress(cells)) == 1 else f"{cells[0]}-{cells[-1]}"
            )
        elif all("pipeline-parameters" in self.notebook.cell(p).tags for p in cells):
            ref = "tag:pipeline-parameters"
        else:
            ref = cells[0]
            self.notes.append(
                f"pipeline parameters are spread over cells {cells}; kale.yaml takes one range,"
                f" so only cell {cells[0]} is used: move them together"
            )
        return {"cell": ref}, params


_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")  # schemas/kale.schema.json, metric.name


def metric_name(variable: str) -> str:
    """A kale.yaml metric name for a printed variable: itself when valid (`acc_forest`).

    Python identifiers may start with `_` or hold letters beyond ASCII, which metric names
    (KFP and Katib show them) may not; those characters become `-`.
    """
    if _METRIC_NAME.match(variable) and len(variable) <= 63:
        return variable
    name = re.sub(r"[^A-Za-z0-9_-]", "-", variable.lstrip("_"))
    name = name if name[:1].isalpha() else f"m-{name}"
    return name[:63].rstrip("-_") or "metric"


def _same_metric(a: str, b: str) -> bool:
    """Kale prints `test_accuracy` while its Katib objective may say `test-accuracy`."""
    return a.replace("_", "-").strip("-").lower() == b.replace("_", "-").strip("-").lower()


def _number(text: Any, integer: bool) -> int | float:
    value = float(text)
    return int(value) if integer else value


def _numbers(values: list[str], default: Any) -> list[int | float] | None:
    """`["10", "50"]` as numbers when the parameter is an int or a float, else None."""
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return None
    try:
        floats = [float(v) for v in values]
    except ValueError:
        return None
    if isinstance(default, int):
        if not all(f.is_integer() for f in floats):
            return None
        return [int(f) for f in floats]
    return floats


def _tuning(
    katib: dict[str, Any], params: list[Parameter], metrics: list[dict[str, str]], notes: list[str]
) -> dict[str, Any] | None:
    objective = katib.get("objective") or {}
    metric = objective.get("objectiveMetricName") or ""
    raw_params = katib.get("parameters") or []
    if not raw_params:
        return None
    match = next((m for m in metrics if _same_metric(m["name"], metric)), None)
    if match is None:
        match = next((m for m in metrics if _same_metric(m["variable"], metric)), None)
    if match is None:
        printed = ", ".join(f"`{m['variable']}`" for m in metrics) or "none"
        notes.append(
            f"katib_metadata: objective metric `{metric}` is not printed in a pipeline-metrics"
            f" cell (printed: {printed}); tuning left out"
        )
        return None
    if metric != match["name"] and _METRIC_NAME.match(metric) and len(metric) <= 63:
        match["name"] = metric  # the name Katib and KFP showed for it, in both places
    metric = match["name"]
    known = {p.name: p for p in params}
    spaces: dict[str, Any] = {}
    for raw in raw_params:
        name, kind = raw.get("name"), raw.get("parameterType")
        space = raw.get("feasibleSpace") or {}
        if name not in known:
            notes.append(
                f"katib_metadata: `{name}` is not a pipeline parameter; left out of tuning"
            )
            continue
        try:
            if kind in ("int", "double"):
                keys = ["min", "max"] + (["step"] if space.get("step") not in (None, "") else [])
                default = known[name].default
                # Kale passed Katib's doubles to an int variable: over whole bounds, an int
                # range is what the notebook can take (`_numbers` decides, as for a
                # categorical list of numbers).
                if (
                    kind == "double"
                    and python_type(default) == "int"
                    and _numbers([space[k] for k in keys], default) is not None
                ):
                    kind = "int"
                    notes.append(
                        f"katib_metadata: `{name}` is a double range over whole numbers and"
                        f" the notebook sets it to {default!r}, an int: written as `type: int`"
                    )
                entry: dict[str, Any] = {"type": kind}
                entry.update((k, _number(space[k], kind == "int")) for k in keys)
            elif kind == "categorical":
                entry = {"type": kind, "values": [str(v) for v in space["list"]]}
                numbers = _numbers(entry["values"], known[name].default)
                if numbers is not None:  # Katib sends text; the parameter wants a number
                    entry = {"type": "discrete", "values": numbers}
            elif kind == "discrete":
                entry = {"type": kind, "values": [_number(v, False) for v in space["list"]]}
                if all(float(v).is_integer() for v in entry["values"]) and isinstance(
                    known[name].default, int
                ):
                    entry["values"] = [int(v) for v in entry["values"]]
            else:
                notes.append(f"katib_metadata: `{name}` has unknown type `{kind}`; left out")
                continue
        except (KeyError, TypeError, ValueError):
            notes.append(f"katib_metadata: the feasible space of `{name}` is incomplete; left out")
            continue
        spaces[name] = entry
    if not spaces:
        return None
    algorithm: dict[str, Any] = {
        "name": (katib.get("algorithm") or {}).get("algorithmName", "random")
    }
    settings = {
        s["name"]: s["value"]
        for s in (katib.get("algorithm") or {}).get("algorithmSettings") or []
        if isinstance(s, dict) and "name" in s and "value" in s
    }
    service = ALGORITHMS.get(str(algorithm["name"]))
    if service is not None:
        for name in [n for n in settings if n not in service.settings]:
            # Kale's Katib dialog keeps the settings of an algorithm chosen before; the
            # service of this one would reject or ignore them.
            owners = [a.name for a in ALGORITHMS.values() if name in a.settings]
            whose = f" (a setting of {', '.join(owners)})" if owners else ""
            notes.append(
                f"katib_metadata: `{algorithm['name']}` does not read the setting `{name}`"
                f"{whose}; left out"
            )
            del settings[name]
    if settings:
        algorithm["settings"] = settings
    tuning: dict[str, Any] = {
        "objective": {"metric": metric, "type": objective.get("type", "maximize")},
        "algorithm": algorithm,
    }
    if objective.get("goal") is not None:
        tuning["objective"]["goal"] = float(objective["goal"])
    for ours, theirs in (
        ("maxTrials", "maxTrialCount"),
        ("parallelTrials", "parallelTrialCount"),
        ("maxFailedTrials", "maxFailedTrialCount"),
    ):
        if katib.get(theirs) is not None:
            tuning[ours] = int(katib[theirs])
    tuning["parameters"] = spaces
    if algorithm["name"] == "grid":
        points = 1
        for space in spaces.values():
            size = grid_size(
                space["type"],
                space.get("min"),
                space.get("max"),
                space.get("step"),
                space.get("values", []),
            )
            points *= size if size is not None else 1
        trials = tuning.get("maxTrials", DEFAULT_MAX_TRIALS)
        if trials > points:
            notes.append(
                f"katib_metadata: {trials} trials are more than the {points} points of the"
                f" grid, which Katib's grid service rejects; maxTrials is {points}"
            )
            tuning["maxTrials"] = points
            if tuning.get("parallelTrials", 0) > points:
                tuning["parallelTrials"] = points
    return tuning


def _volumes(raw: list[Any], notes: list[str]) -> list[dict[str, Any]]:
    volumes = []
    taken: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or not item.get("name") or not item.get("mount_point"):
            continue
        claim = dns_label(str(item["name"]), fallback="data")
        volume: dict[str, Any] = {
            "name": unique(dns_label(str(item["name"]), fallback="data"), taken),
            "claim": claim,
            "mountPath": item["mount_point"],
        }
        if item.get("type") == "new_pvc":
            notes.append(
                f"volume `{item['name']}`: Kale created this claim; kfg mounts existing"
                f" claims, so create `{claim}` first"
            )
        elif item.get("type") == "clone":
            # Kale gave each run a clone (a Rok snapshot) of the notebook's volume; mounting
            # the claim itself would let steps change the live workspace.
            volume["readOnly"] = True
            notes.append(
                f"volume `{item['name']}`: Kale gave each run a clone of this volume; kfg"
                f" mounts the claim `{claim}` itself, so it is read-only here. Point `claim`"
                " at a copy, or drop readOnly if the steps may change the original"
            )
        if item.get("snapshot"):
            volume["snapshot"] = {
                "version": dns_label(str(item.get("snapshot_name") or "v1"), fallback="v1")
            }
        volumes.append(volume)
    return volumes


def translate(notebook: Notebook, notes: list[str]) -> tuple[dict[str, Any], str | None]:
    """The `spec` of the kale.yaml, and the pipeline name Kale's metadata gives, if any."""
    t = _Translation(notebook, notes)
    previous: str | None = None
    for cell in notebook.code_cells:
        previous = t.cell(cell, previous)
    for step in t.steps.values():
        for key, value in t.defaults.items():
            if isinstance(value, dict):
                step[key] = {**value, **step.get(key, {})}
            else:
                step.setdefault(key, value)
    spec: dict[str, Any] = {}
    meta = t.metadata
    if meta.get("pipeline_description"):
        spec["description"] = str(meta["pipeline_description"])
    if meta.get("docker_image"):
        spec["image"] = str(meta["docker_image"])
    if t.prelude:
        spec["prelude"] = compress(sorted(t.prelude))
    metrics = t.metrics()
    skip = sorted(set(t.skip) | set(t.metric_cells))
    if skip:
        spec["skip"] = compress(skip)
    parameters, params = t.parameters()
    if parameters:
        spec["parameters"] = parameters
    empty = [n for n, s in t.steps.items() if all(notebook.cell(c).is_blank for c in s["cells"])]
    for gone in empty:
        notes.append(f"Kale step `{gone}` has only empty cells, so it is left out")
        del t.steps[gone]
        for step in t.steps.values():
            if gone in step.get("after", []):
                step["after"] = [a for a in step["after"] if a != gone]
                if not step["after"]:
                    del step["after"]
    spec["steps"] = [{**s, "cells": compress(s["cells"])} for s in t.steps.values()]
    if not spec["steps"]:
        notes.append("no cell carries a step: or block: tag, so there is no step to propose")
    defined: set[str] = set()
    for step in t.steps.values():
        for position in step["cells"]:
            tree = parse_cell(notebook.cell(position).source)
            if isinstance(tree, ast.Module):
                defined |= bound_names(tree)
    for metric in [m for m in metrics if m["variable"] not in defined]:
        notes.append(f"metric `{metric['variable']}`: no step defines it, so it is left out")
        metrics.remove(metric)
    if metrics:
        spec["metrics"] = metrics
    volumes = _volumes(meta.get("volumes") or [], notes)
    if volumes:
        spec["volumes"] = volumes
    katib = meta.get("katib_metadata")
    if isinstance(katib, dict):
        tuning = _tuning(katib, params, metrics, notes)
        if tuning and meta.get("katib_run") is False:
            tuning = {"cluster": False, **tuning}
            # Kale kept the search space but ran no Katib: `kfg tune` may use it, the
            # cluster does not get an Experiment until `cluster` is removed.
            notes.append(
                "katib_run is false: the search space is kept for `kfg tune`;"
                " remove `cluster: false` in spec.tuning to tune on the cluster with Katib"
            )
        if tuning:
            spec["tuning"] = tuning
    name = meta.get("pipeline_name")
    return spec, (dns_label(str(name), fallback="pipeline") if name else None)

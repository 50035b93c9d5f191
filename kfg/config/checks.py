"""Checks the JSON Schema cannot express: references between parts of kale.yaml, the
notebook's contents, Kubernetes quantities, and tuning specs that contradict the defaults.

Each check reads schema-valid data and reports through `Findings`, so every message lands
on the line of the node it is about.
"""

from __future__ import annotations

import ast
import keyword
import re
from typing import Any

from kfg.analysis.parameters import Parameter, parse_parameters, python_type
from kfg.analysis.source import bound_names, parse_cell
from kfg.config.cellmap import PARAMETERS, CellMap, step_role
from kfg.config.findings import Findings
from kfg.diagnostics import did_you_mean
from kfg.names import ARTIFACT_PREFIXES
from kfg.notebook.reader import Notebook
from kfg.pep508 import RequirementError
from kfg.pep508 import normalize as normalize_requirement
from kfg.quantity import INT64_MAX, parse_duration, parse_quantity, too_large

MEBIBYTE = 1 << 20


def check_steps(spec: dict[str, Any], findings: Findings, cellmap: CellMap | None) -> None:
    """Unique names, `after` pointing at real steps without cycles, steps in notebook order."""
    steps = spec["steps"]
    first_at: dict[str, int] = {}
    for index, step in enumerate(steps):
        name = step["name"]
        if name in first_at:
            line = findings.line(("spec", "steps", first_at[name], "name"))
            findings.error(
                ("spec", "steps", index, "name"),
                "duplicate-step",
                f"duplicate step name `{name}` (first used on line {line})",
            )
        else:
            first_at[name] = index
    names = list(first_at)
    graph: dict[str, list[str]] = {name: [] for name in names}
    for index, step in enumerate(steps):
        for j, target in enumerate(step.get("after", [])):
            path = ("spec", "steps", index, "after", j)
            if target == step["name"]:
                findings.error(path, "bad-after", f"step `{target}` cannot run after itself")
            elif target not in first_at:
                hint = did_you_mean(target, names)
                findings.error(
                    path, "unknown-step", f"`after` names an unknown step `{target}`{hint}"
                )
            else:
                graph[step["name"]].append(target)
    cycle = _find_cycle(graph)
    if cycle:
        index = first_at[cycle[0]]
        findings.error(
            ("spec", "steps", index, "after"),
            "cycle",
            "steps wait for each other in a cycle: " + " -> ".join([*cycle, cycle[0]]),
        )
    if cellmap is None:
        return
    previous: tuple[str, int] | None = None
    for index, step in enumerate(steps):
        cells = cellmap.sections.get(step_role(step["name"]), [])
        if not cells:
            continue
        if previous and cells[0] < previous[1]:
            findings.error(
                ("spec", "steps", index, "cells"),
                "step-order",
                f"step `{step['name']}` starts at cell {cells[0]}, before step `{previous[0]}`"
                f" listed above it (cell {previous[1]}); list steps in notebook order",
            )
        previous = (step["name"], cells[0])


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the `after` graph, as the list of its nodes, or None."""
    state: dict[str, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        trail: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                trail.append(node)
            edges = graph.get(node, [])
            if i < len(edges):
                stack.append((node, i + 1))
                nxt = edges[i]
                if state.get(nxt) == 1:
                    return trail[trail.index(nxt) :]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                trail.pop()
    return None


def parameters_of(
    spec: dict[str, Any], notebook: Notebook | None, cellmap: CellMap | None, findings: Findings
) -> list[Parameter] | None:
    """The pipeline parameters, from `values` or from the parameters cell; None if unknown."""
    raw = spec.get("parameters")
    if raw is None:
        return []
    if "values" in raw:
        parameters = [Parameter(name, value) for name, value in raw["values"].items()]
        for name in raw["values"]:
            if name.startswith(ARTIFACT_PREFIXES):
                findings.error(
                    ("spec", "parameters", "values", name),
                    "bad-parameter",
                    f"`{name}` starts with {'/'.join(ARTIFACT_PREFIXES)}, which kfg reserves for"
                    " the artifacts steps pass",
                    key=True,
                )
            if keyword.iskeyword(name):
                findings.error(
                    ("spec", "parameters", "values", name),
                    "bad-parameter",
                    f"`{name}` is a Python keyword and cannot be a parameter name",
                    key=True,
                )
        return parameters
    if notebook is None or cellmap is None:
        return None
    found: dict[str, Parameter] = {}
    for position in cellmap.sections.get(PARAMETERS, []):
        params, problems = parse_parameters(notebook.cell(position).source)
        for problem in problems:
            findings.error(
                ("spec", "parameters", "cell"),
                "bad-parameter",
                f"parameters cell {position}, line {problem.line}: {problem.message}",
            )
        for param in params:
            found[param.name] = param
    for param in found.values():
        if param.name.startswith(ARTIFACT_PREFIXES):
            findings.error(
                ("spec", "parameters", "cell"),
                "bad-parameter",
                f"parameters cell line {param.line}: `{param.name}` starts with"
                f" {'/'.join(ARTIFACT_PREFIXES)}, which kfg reserves for the artifacts steps pass",
            )
    if not found and not findings.failed:
        findings.error(
            ("spec", "parameters", "cell"),
            "bad-parameter",
            "the parameters cell assigns no parameters",
        )
    return list(found.values())


def step_definitions(
    spec: dict[str, Any], notebook: Notebook, cellmap: CellMap, findings: Findings
) -> dict[str, set[str]]:
    """Names each step binds at module scope; syntax errors are reported on the step."""
    defined: dict[str, set[str]] = {}
    for index, step in enumerate(spec["steps"]):
        names: set[str] = set()
        for position in cellmap.sections.get(step_role(step["name"]), []):
            tree = parse_cell(notebook.cell(position).source)
            if isinstance(tree, ast.Module):
                names |= bound_names(tree)
            else:
                findings.error(
                    ("spec", "steps", index, "cells"),
                    "syntax-error",
                    f"step `{step['name']}`: cell {position}, line {tree.line}: {tree.message}",
                )
        defined[step["name"]] = names
    return defined


def check_metrics(
    spec: dict[str, Any], findings: Findings, defined: dict[str, set[str]] | None
) -> dict[str, str]:
    """Which step reports each metric; reports unknown steps and undefined variables."""
    reporters: dict[str, str] = {}
    seen: dict[str, int] = {}
    steps = [s["name"] for s in spec["steps"]]
    for index, metric in enumerate(spec.get("metrics", [])):
        path = ("spec", "metrics", index)
        name = metric["name"]
        if name in seen:
            line = findings.line(("spec", "metrics", seen[name]))
            findings.error(
                (*path, "name"),
                "duplicate-metric",
                f"duplicate metric `{name}` (first on line {line})",
            )
            continue
        seen[name] = index
        variable = metric.get("variable", name)
        step = metric.get("step")
        if step is not None and step not in steps:
            findings.error(
                (*path, "step"), "unknown-step", f"unknown step `{step}`{did_you_mean(step, steps)}"
            )
            continue
        if defined is None:
            continue
        if step is not None:
            if variable not in defined.get(step, set()):
                findings.error(
                    (*path, "step" if "variable" not in metric else "variable"),
                    "undefined-metric",
                    f"step `{step}` does not define `{variable}`"
                    f"{did_you_mean(variable, defined.get(step, set()))}",
                )
                continue
            reporters[name] = step
            continue
        candidates = [s for s in steps if variable in defined.get(s, set())]
        if not candidates:
            everything = set().union(*defined.values()) if defined else set()
            findings.error(
                (*path, "variable" if "variable" in metric else "name"),
                "undefined-metric",
                f"no step defines the metric variable `{variable}`"
                f"{did_you_mean(variable, everything)}",
            )
            continue
        reporters[name] = candidates[-1]
    return reporters


def check_resources(spec: dict[str, Any], findings: Findings) -> None:
    for index, step in enumerate(spec["steps"]):
        resources = step.get("resources", {})
        for kind in ("cpu", "memory"):
            if kind not in resources:
                continue
            path = ("spec", "steps", index, "resources", kind)
            value = resources[kind]
            request, limit = (
                (value.get("request"), value.get("limit"))
                if isinstance(value, dict)
                else (value, None)
            )
            req_q = parse_quantity(request) if request is not None else None
            lim_q = parse_quantity(limit) if limit is not None else None
            if req_q is not None and lim_q is not None and req_q > lim_q:
                findings.error(
                    path,
                    "request-above-limit",
                    f"{kind} request {request} is more than its limit {limit}",
                )
            for written, amount in ((request, req_q), (limit, lim_q)):
                if amount is not None and too_large(kind, amount):
                    unit = "millicores" if kind == "cpu" else "bytes"
                    findings.error(
                        path,
                        "invalid-value",
                        f"{kind} {written} is more than Kubernetes can hold (at most"
                        f" {INT64_MAX} {unit})",
                    )
            for amount in (req_q, lim_q):
                if kind == "memory" and amount is not None and 0 < amount < MEBIBYTE:
                    findings.warning(
                        path,
                        "tiny-memory",
                        f"memory {amount} means {amount} bytes; write a unit, as in 4Gi or 512Mi",
                    )
                    break
        timeout = step.get("timeout")
        if timeout is not None and not parse_duration(timeout):
            findings.error(
                ("spec", "steps", index, "timeout"),
                "invalid-value",
                "timeout must be longer than zero",
            )


def check_tolerations(spec: dict[str, Any], findings: Findings) -> None:
    """What the API server's toleration validation rejects and the schema cannot say.

    The rules are those of kube-apiserver's ValidateTolerations
    (kubernetes/kubernetes pkg/apis/core/validation/validation.go, v1.34); a pod spec that
    breaks one is refused when the step's pod is created, long after the merge. Key and
    value formats are in the schema.
    """
    for index, step in enumerate(spec["steps"]):
        for j, toleration in enumerate(step.get("tolerations", [])):
            path = ("spec", "steps", index, "tolerations", j)
            operator = toleration.get("operator", "Equal")
            effect = toleration.get("effect")
            if "tolerationSeconds" in toleration and effect != "NoExecute":
                got = f"`effect: {effect}`" if effect else "no effect (all effects)"
                findings.error(
                    (*path, "tolerationSeconds"),
                    "toleration",
                    f"`tolerationSeconds` needs `effect: NoExecute`, got {got}; Kubernetes"
                    " rejects the pod (only a NoExecute taint evicts after a delay)",
                    key=True,
                )
            if operator == "Exists" and toleration.get("value"):
                findings.error(
                    (*path, "value"),
                    "toleration",
                    "`value` must be empty with `operator: Exists`, which matches every value"
                    " of the key; drop `value` or use `operator: Equal`",
                    key=True,
                )
            if not toleration.get("key") and operator != "Exists":
                where = (*path, "operator") if "operator" in toleration else path
                findings.error(
                    where,
                    "toleration",
                    "a toleration without `key` must have `operator: Exists` (it then tolerates"
                    f" every taint); `operator` is {operator}"
                    + ("" if "operator" in toleration else " by default")
                    + "; add the taint's `key`",
                )


def check_volumes(spec: dict[str, Any], findings: Findings) -> None:
    names: dict[str, int] = {}
    mounts: dict[str, int] = {}
    for index, volume in enumerate(spec.get("volumes", [])):
        path = ("spec", "volumes", index)
        if volume["name"] in names:
            findings.error(
                (*path, "name"), "duplicate-volume", f"duplicate volume name `{volume['name']}`"
            )
        names.setdefault(volume["name"], index)
        mount = volume["mountPath"].rstrip("/") or "/"
        if mount in mounts:
            findings.error(
                (*path, "mountPath"),
                "duplicate-mount",
                f"mount path `{volume['mountPath']}` is already used by volume"
                f" `{spec['volumes'][mounts[mount]]['name']}`",
            )
        mounts.setdefault(mount, index)
        if "snapshot" in volume and "size" not in volume["snapshot"]:
            findings.warning(
                (*path, "snapshot"),
                "snapshot-size",
                "runs restore this snapshot into a new claim, which needs a size at least the"
                " snapshot's restoreSize; add `size:` (10Gi is assumed)",
                key=True,
            )
        if volume.get("readOnly"):
            findings.warning(
                (*path, "readOnly"),
                "read-only-not-enforced",
                "Kubeflow Pipelines 2.x mounts claims read-write (its platform spec has no"
                " read-only mount), so `readOnly` is not enforced; steps must not write here",
            )
    for index, step in enumerate(spec["steps"]):
        if step.get("snapshot") == "after":
            mounted = step.get("volumes", list(names))  # steps mount every volume by default
            writable = [
                spec["volumes"][names[n]]
                for n in mounted
                if n in names
                and "snapshot" not in spec["volumes"][names[n]]
                and not spec["volumes"][names[n]].get("readOnly")
            ]
            if not writable:
                findings.error(
                    ("spec", "steps", index, "snapshot"),
                    "snapshot-nothing",
                    "`snapshot: after` needs a writable volume in the step's `volumes` (not"
                    " read-only, not restored from a snapshot) to take a snapshot of",
                )
        for j, name in enumerate(step.get("volumes", [])):
            if name not in names:
                findings.error(
                    ("spec", "steps", index, "volumes", j),
                    "unknown-volume",
                    f"unknown volume `{name}`{did_you_mean(name, names)}",
                )


def check_packages(spec: dict[str, Any], findings: Findings) -> None:
    lists: list[tuple[tuple[str | int, ...], list[str]]] = []
    if "packages" in spec:
        lists.append((("spec", "packages"), spec["packages"]))
    for index, step in enumerate(spec["steps"]):
        if "packages" in step:
            lists.append((("spec", "steps", index, "packages"), step["packages"]))
    if not lists:
        return
    for path, packages in lists:
        for j, text in enumerate(packages):
            try:
                normalized, pinned = normalize_requirement(text)
            except RequirementError as exc:
                findings.error((*path, j), "bad-package", str(exc))
                continue
            if not pinned:
                name = re.split(r"[\s\[<>=!~;@(]", normalized, maxsplit=1)[0]
                findings.warning(
                    (*path, j),
                    "unpinned-package",
                    f"`{text}` is not pinned; pin it (`{name}==<version>`) so the"
                    " step's image, cache key and results stay reproducible",
                )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_space(
    name: str, space: dict[str, Any], parameter: Parameter, findings: Findings
) -> None:
    path = ("spec", "tuning", "parameters", name)
    default = parameter.default
    kind = space["type"]
    expected = {"int": "int", "double": "float", "categorical": "str", "discrete": "int or float"}[
        kind
    ]
    type_ok = {
        "int": python_type(default) == "int",
        "double": python_type(default) in ("int", "float"),
        "categorical": python_type(default) in ("str", "bool"),
        "discrete": python_type(default) in ("int", "float"),
    }[kind]
    if not type_ok:
        findings.error(
            (*path, "type"),
            "tuning-type",
            f"`{name}` defaults to {default!r} ({python_type(default)}), which a `{kind}`"
            f" search space cannot tune; {kind} needs a {expected} parameter",
        )
        return
    if kind in ("int", "double"):
        low, high = space["min"], space["max"]
        if low >= high:
            findings.error(
                (*path, "max"),
                "tuning-bounds",
                f"`max` ({high}) must be greater than `min` ({low})",
            )
            return
        if not low <= default <= high:
            findings.error(
                path,
                "tuning-bounds",
                f"the default of `{name}` ({default}) lies outside [{low}, {high}]",
            )
        step = space.get("step")
        if step is not None and step > high - low:
            findings.error(
                (*path, "step"),
                "tuning-bounds",
                f"`step` ({step}) is larger than the range {low}..{high}",
            )
        if space.get("distribution") in ("logUniform", "logNormal") and low <= 0:
            findings.error(
                (*path, "min"),
                "tuning-bounds",
                f"a {space['distribution']} distribution needs `min` greater than 0, got {low}",
            )
        return
    values = space["values"]
    for j, value in enumerate(values):
        if kind == "discrete" and not _number(value):
            continue  # the schema reports it
        if python_type(value) != python_type(default) and not (
            kind == "discrete" and _number(default)
        ):
            findings.error(
                (*path, "values", j),
                "tuning-type",
                f"value {value!r} is a {python_type(value)}"
                f" but `{name}` is a {python_type(default)}",
            )
    if default not in values:
        findings.error(
            (*path, "values"),
            "tuning-bounds",
            f"the default of `{name}` ({default!r}) is not one of the values to try",
        )


def check_tuning(
    spec: dict[str, Any], findings: Findings, parameters: list[Parameter] | None
) -> None:
    tuning = spec.get("tuning")
    if tuning is None:
        return
    metrics = [m["name"] for m in spec.get("metrics", [])]
    objective = tuning["objective"]
    if objective["metric"] not in metrics:
        hint = did_you_mean(objective["metric"], metrics) or (
            "; declare it in spec.metrics" if not metrics else ""
        )
        findings.error(
            ("spec", "tuning", "objective", "metric"),
            "unknown-metric",
            f"objective metric `{objective['metric']}` is not a declared metric{hint}",
        )
    for j, name in enumerate(objective.get("additionalMetrics", [])):
        if name not in metrics:
            findings.error(
                ("spec", "tuning", "objective", "additionalMetrics", j),
                "unknown-metric",
                f"`{name}` is not a declared metric{did_you_mean(name, metrics)}",
            )
    for name in objective.get("strategies", {}):
        if name not in metrics:
            findings.error(
                ("spec", "tuning", "objective", "strategies", name),
                "unknown-metric",
                f"`{name}` is not a declared metric{did_you_mean(name, metrics)}",
                key=True,
            )
    maximum = tuning.get("maxTrials")
    if maximum is not None:
        for key in ("parallelTrials", "maxFailedTrials"):
            if tuning.get(key, 0) > maximum:
                findings.error(
                    ("spec", "tuning", key),
                    "tuning-counts",
                    f"`{key}` ({tuning[key]}) is more than `maxTrials` ({maximum});"
                    " Katib rejects that",
                )
    algorithm = tuning["algorithm"]["name"]
    spaces = tuning["parameters"]
    for name, space in spaces.items():
        path = ("spec", "tuning", "parameters", name)
        if algorithm == "grid" and space["type"] == "double" and "step" not in space:
            findings.error(
                path,
                "tuning-grid",
                f"the grid algorithm needs a `step` for double parameter `{name}`",
            )
        if algorithm == "cmaes" and space["type"] in ("categorical", "discrete"):
            findings.error(
                (*path, "type"),
                "tuning-algorithm",
                f"cmaes tunes only int and double parameters, not {space['type']}",
            )
    if algorithm == "hyperband":
        resource = tuning["algorithm"].get("settings", {}).get("resource_name")
        if resource not in spaces:
            findings.error(
                ("spec", "tuning", "algorithm"),
                "tuning-algorithm",
                "hyperband needs `settings.resource_name` naming a tuned parameter"
                " (the budget, e.g. epochs)",
            )
    if parameters is None:
        return
    known = {p.name: p for p in parameters}
    for name, space in spaces.items():
        if name not in known:
            hint = did_you_mean(name, known) or (
                "; declare it in spec.parameters" if not known else ""
            )
            findings.error(
                ("spec", "tuning", "parameters", name),
                "unknown-parameter",
                f"`{name}` is not a pipeline parameter{hint}",
                key=True,
            )
            continue
        _check_space(name, space, known[name], findings)


# The settings each Katib suggestion service documents. Katib checks them only when the
# experiment starts, so kfg warns early; a warning, because services gain settings.
KATIB_SETTINGS: dict[str, frozenset[str]] = {
    "random": frozenset({"random_state"}),
    "grid": frozenset({"random_state"}),
    "tpe": frozenset({"n_startup_trials", "n_ei_candidates", "random_state"}),
    "multivariate-tpe": frozenset({"n_startup_trials", "n_ei_candidates", "random_state"}),
    "cmaes": frozenset({"random_state", "sigma", "restart_strategy"}),
    "sobol": frozenset({"random_state"}),
    "bayesianoptimization": frozenset(
        {"base_estimator", "n_initial_points", "acq_func", "acq_optimizer", "random_state"}
    ),
    "hyperband": frozenset({"resource_name", "eta", "r_l"}),
    "medianstop": frozenset({"min_trials_required", "start_step"}),
}


def check_algorithm_settings(spec: dict[str, Any], findings: Findings) -> None:
    tuning = spec.get("tuning")
    if not tuning:
        return
    for key in ("algorithm", "earlyStopping"):
        block = tuning.get(key)
        if not block:
            continue
        known = KATIB_SETTINGS.get(block["name"], frozenset())
        for setting in block.get("settings", {}):
            if setting not in known:
                listed = ", ".join(sorted(known)) or "none"
                findings.warning(
                    ("spec", "tuning", key, "settings", setting),
                    "tuning-setting",
                    f"Katib's {block['name']} does not document a setting `{setting}`"
                    f"{did_you_mean(setting, known)} (documented: {listed}); its suggestion"
                    " service may reject the experiment",
                    key=True,
                )

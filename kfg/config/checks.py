"""Checks the JSON Schema cannot express: references between parts of kale.yaml, the
notebook's contents, Kubernetes quantities, and tuning specs that contradict the defaults.

Each check reads schema-valid data and reports through `Findings`, so every message lands
on the line of the node it is about.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from typing import Any

from kfg.config.algorithms import (
    ALGORITHMS,
    EARLY_STOPPING,
    GRID_MAX,
    HYPERBAND_STATE,
    Algorithm,
    accepting,
    grid_size,
    setting_text,
)
from kfg.config.cellmap import PARAMETERS, PRELUDE, CellMap, step_role
from kfg.config.findings import Findings
from kfg.config.model import (
    DEFAULT_IMAGE,
    DEFAULT_MAX_TRIALS,
    DEFAULT_PARALLEL_TRIALS,
    gpu_of,
)
from kfg.config.requirements import RequirementError
from kfg.config.requirements import normalize as normalize_requirement
from kfg.diagnostics import did_you_mean
from kfg.files.yamlsource import Path
from kfg.kube.names import ARTIFACT_PREFIXES
from kfg.kube.quantity import INT64_MAX, parse_duration, parse_quantity, too_large
from kfg.notebook.reader import Notebook
from kfg.pysource.graph import find_cycle
from kfg.pysource.imports import (
    Import,
    distributions,
    imports,
    installed_version,
    is_stdlib,
    provided,
)
from kfg.pysource.parameters import (
    Parameter,
    name_problem,
    parse_parameters,
    python_type,
    value_problem,
)
from kfg.pysource.source import bound_names, parse_cell
from kfg.upstream import KATIB

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
    cycle = find_cycle(graph)
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
            elif bad_name := name_problem(name):
                findings.error(
                    ("spec", "parameters", "values", name),
                    "bad-parameter",
                    f"`{name}` {bad_name}",
                    key=True,
                )
            if bad_value := value_problem(raw["values"][name]):
                findings.error(
                    ("spec", "parameters", "values", name), "bad-parameter", f"`{name}` {bad_value}"
                )
        return parameters
    if notebook is None or cellmap is None:
        return None
    found: dict[str, Parameter] = {}
    for position in cellmap.sections.get(PARAMETERS, []):
        params, problems = parse_parameters(notebook.cell(position).source)
        for problem in problems:
            report = findings.warning if problem.warning else findings.error
            report(
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
        if "timeout" in step:
            check_duration(step["timeout"], ("spec", "steps", index, "timeout"), findings)
    launcher = spec.get("launcher", {})
    if "timeout" in launcher:
        check_duration(launcher["timeout"], ("spec", "launcher", "timeout"), findings)


# The longest timeout kfg renders: whole seconds in an int32 (about 68 years), which every
# field it lands in holds (activeDeadlineSeconds and the launcher's --timeout are int64).
MAX_DURATION_SECONDS = (1 << 31) - 1


def check_duration(value: str | int, path: Path, findings: Findings) -> None:
    """A timeout is rendered in whole seconds: it must be at least one and fit a field."""
    seconds = parse_duration(value)
    if seconds is None:
        return  # the schema has said what is wrong
    if seconds < 1:
        findings.error(path, "invalid-value", "a timeout must be at least 1s")
    elif seconds > MAX_DURATION_SECONDS:
        findings.error(
            path,
            "invalid-value",
            f"a timeout must be at most {MAX_DURATION_SECONDS} seconds (about 68 years)",
        )


_GPU_IMAGE = re.compile(r"cuda|gpu|nvidia|rocm|pytorch|tensorflow|jax|triton|ngc", re.IGNORECASE)
_CPU_IMAGE = re.compile(r"(^|/)python:|slim|alpine|(^|/)(debian|ubuntu|busybox):")


def check_gpus(spec: dict[str, Any], findings: Findings) -> None:
    """A GPU step that cannot reach a GPU node, or whose image has no GPU libraries.

    Both pass validation and the local run, then fail (or silently run on CPU) only in the
    cluster: GPU nodes are commonly tainted and labelled, and python:*-slim has no CUDA.
    """
    default_image = spec.get("image", DEFAULT_IMAGE)
    for index, step in enumerate(spec["steps"]):
        gpu = gpu_of(step.get("resources", {}).get("gpu"))
        if gpu is None:
            continue
        count, kind = gpu.count, gpu.type
        path = ("spec", "steps", index, "resources", "gpu")
        if not step.get("nodeSelector") and not step.get("tolerations"):
            findings.warning(
                path,
                "gpu-scheduling",
                f"step `{step['name']}` asks for {count} {kind} but sets neither nodeSelector"
                " nor tolerations; GPU nodes are usually tainted, so the pod may stay Pending:"
                f" add e.g. `tolerations: [{{key: {kind}, operator: Exists, effect: NoSchedule}}]`",
            )
        image = step.get("image", default_image)
        if _CPU_IMAGE.search(image) and not _GPU_IMAGE.search(image):
            findings.warning(
                ("spec", "steps", index, "image") if "image" in step else path,
                "gpu-image",
                f"step `{step['name']}` asks for {count} {kind} but its image `{image}` looks"
                " CPU-only (no CUDA libraries); use a GPU image such as"
                " pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            )


def _modules_written(notebook: Notebook, positions: list[int]) -> set[str]:
    """Modules the step writes itself (`%%writefile helpers.py`, `%%file`) before it
    imports them: they come from no package."""
    found: set[str] = set()
    for position in positions:
        lines = notebook.cell(position).source.lstrip().splitlines()
        if not lines or not lines[0].startswith(("%%writefile", "%%file")):
            continue
        words = [w for w in lines[0].split()[1:] if not w.startswith("-")]
        if words and words[0].endswith(".py") and "/" not in words[0]:
            found.add(words[0][: -len(".py")])
    return found


def check_imports(
    spec: dict[str, Any], notebook: Notebook, cellmap: CellMap, findings: Findings
) -> None:
    """Modules a step imports that neither its image (as declared) nor its packages provide.

    The laptop has them installed, so `kfg run` succeeds; the step's pod does not, so every
    run fails there. The standard library never warns; `imageProvides` lists what the image
    has (a site image with numpy and pandas).
    """
    prelude = [
        (position, found)
        for position in cellmap.sections.get(PRELUDE, [])
        for found in _cell_imports(notebook, position)
    ]
    for index, step in enumerate(spec["steps"]):
        packages = step.get("packages", spec.get("packages", []))
        present = set(step.get("imageProvides", spec.get("imageProvides", [])))
        image = step.get("image", spec.get("image", DEFAULT_IMAGE))
        own = [
            (position, found)
            for position in cellmap.sections.get(step_role(step["name"]), [])
            for found in _cell_imports(notebook, position)
        ]
        warned: set[str] = set()
        written = _modules_written(
            notebook,
            [
                *cellmap.sections.get(PRELUDE, []),
                *cellmap.sections.get(step_role(step["name"]), []),
            ],
        )
        for position, found in [*prelude, *own]:
            module = found.module
            if (
                module in warned
                or module.partition(".")[0] in written
                or module in present
                or is_stdlib(module)
                or provided(module, packages)
            ):
                continue
            warned.add(module)
            distribution = distributions(module)[0]
            version = installed_version(distribution)
            pin = f"{distribution}=={version}" if version else distribution
            where = "the prelude" if (position, found) in prelude else "its"
            findings.warning(
                ("spec", "steps", index, "packages" if "packages" in step else "name"),
                "missing-package",
                f"step `{step['name']}` imports `{module}` ({where} cell {position}, line"
                f" {found.line}), which neither its packages nor its image `{image}` provide"
                f" as declared; add `{pin}` to packages, or list `{module}` in imageProvides"
                " if the image has it",
            )


def _cell_imports(notebook: Notebook, position: int) -> list[Import]:
    tree = parse_cell(notebook.cell(position).source)
    return imports(tree) if isinstance(tree, ast.Module) else []


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
    if kind == "double" and isinstance(default, int) and not isinstance(default, bool):
        # Katib draws doubles such as 123.4 and `kfg trial` refuses them for an int parameter;
        # truncating locally would report values the pipeline never ran with.
        step = space.get("step")
        example = space["min"] + (0.5 if step is None else step)
        why = (
            f"its values such as {example!r} are not whole numbers"
            if not float(example).is_integer()
            else "Katib draws it as a float, which an int parameter does not take"
        )
        findings.error(
            (*path, "type"),
            "tuning-type",
            f"`{name}` defaults to {default!r} (int), which a `double` search space cannot tune"
            f" ({why}); use `type: int`, or make the default a float"
            f" (`{name} = {float(default)!r}`)",
        )
        return
    type_ok = {
        "int": python_type(default) == "int",
        "double": python_type(default) == "float",
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
        if (
            kind == "discrete"
            and isinstance(default, int)
            and not isinstance(default, bool)
            and isinstance(value, float)
            and not value.is_integer()
        ):
            findings.error(
                (*path, "values", j),
                "tuning-type",
                f"value {value!r} is not a whole number but `{name}` is an int"
                f" (`kfg trial` and `kfg tune` refuse it); make the default a float"
                f" (`{name} = {float(default)!r}`) or try whole numbers",
            )
            continue
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
    spaces = tuning["parameters"]
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


def check_algorithm_settings(spec: dict[str, Any], findings: Findings) -> None:
    """Each algorithm's settings and search space, as the Katib service that runs it sees them.

    What the service rejects fails the Experiment on the cluster, so it is an error here; a
    setting it silently ignores is a warning (see `kfg.config.algorithms`).
    """
    tuning = spec.get("tuning")
    if not tuning:
        return
    algorithm = ALGORITHMS[tuning["algorithm"]["name"]]
    _check_settings(tuning["algorithm"], algorithm, ("spec", "tuning", "algorithm"), findings)
    early = tuning.get("earlyStopping")
    if early:
        rule = EARLY_STOPPING[early["name"]]
        _check_settings(early, rule, ("spec", "tuning", "earlyStopping"), findings)
    spaces: dict[str, dict[str, Any]] = tuning["parameters"]
    if algorithm.name == "grid":
        _check_grid(tuning, spaces, findings)
    elif algorithm.name == "cmaes":
        _check_cmaes(spaces, findings)
    elif algorithm.name == "hyperband":
        _check_hyperband(tuning, spaces, findings)


def _check_settings(
    block: dict[str, Any], algorithm: Algorithm, path: tuple[str, ...], findings: Findings
) -> None:
    service = algorithm.service
    known = algorithm.settings
    for name, value in block.get("settings", {}).items():
        where = (*path, "settings", name)
        check = known.get(name)
        if check is None:
            _unknown_setting(name, algorithm, where, findings)
            continue
        problem = check(setting_text(value))
        if problem:
            findings.error(
                where,
                "tuning-setting",
                f"`{name}` {problem}: {algorithm.describe()} {service.failure}"
                f" ({service.source} in kubeflow/katib {KATIB})",
            )


def _unknown_setting(name: str, algorithm: Algorithm, where: Path, findings: Findings) -> None:
    service = algorithm.service
    listed = ", ".join(f"`{s}`" for s in sorted(algorithm.settings, key=str.lower)) or "none"
    same_but_case = [s for s in algorithm.settings if s.lower() == name.lower()]
    hint = (
        f"; did you mean `{same_but_case[0]}`?"
        if same_but_case
        else did_you_mean(name, algorithm.settings)
    )
    elsewhere = [a for a in accepting(name) if a != algorithm.name]
    if not hint and elsewhere:
        hint = f" (`{name}` is a setting of {', '.join(elsewhere)})"
    if algorithm.name == "hyperband" and name in HYPERBAND_STATE:
        findings.warning(
            where,
            "tuning-setting",
            f"`{name}` is part of the state Katib's hyperband keeps between suggestions;"
            " setting it overrides the brackets the algorithm computes from r_l and eta",
            key=True,
        )
    elif service.rejects_unknown:
        findings.error(
            where,
            "tuning-setting",
            f"{algorithm.describe()} rejects the setting `{name}`{hint}; it accepts {listed}",
            key=True,
        )
    else:
        findings.warning(
            where,
            "tuning-setting",
            f"{algorithm.describe()} ignores the setting `{name}`{hint}; it reads {listed}",
            key=True,
        )


def _check_grid(
    tuning: dict[str, Any], spaces: dict[str, dict[str, Any]], findings: Findings
) -> None:
    """Katib's optuna service rejects a double without a step and more trials than points.

    kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/optuna/service.py:238-259.
    """
    combinations = 1
    for name, space in spaces.items():
        size = grid_size(
            space["type"],
            space.get("min"),
            space.get("max"),
            space.get("step"),
            space.get("values", []),
        )
        if size is None:
            findings.error(
                ("spec", "tuning", "parameters", name),
                "tuning-grid",
                f"the grid algorithm needs a `step` for double parameter `{name}`",
            )
            return
        combinations *= size
    if combinations > GRID_MAX:
        findings.error(
            ("spec", "tuning", "parameters"),
            "tuning-grid",
            f"the grid has {combinations:,} points, more than the {GRID_MAX:,} kfg allows:"
            " kfg tune and Katib's suggestion service list every point before the first"
            " trial; raise the `step`s or narrow the ranges",
        )
        return
    trials = tuning.get("maxTrials", DEFAULT_MAX_TRIALS)
    if trials > combinations:
        findings.error(
            ("spec", "tuning", "maxTrials") if "maxTrials" in tuning else ("spec", "tuning"),
            "tuning-grid",
            f"{trials} trials are more than the {combinations} points of the grid;"
            " Katib's optuna service rejects that: lower `maxTrials` or refine the grid",
        )


def _check_cmaes(spaces: dict[str, dict[str, Any]], findings: Findings) -> None:
    """goptuna's CMA-ES needs two numeric dimensions and samples lists outside CMA-ES.

    kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/goptuna/service.go:187-197; c-bata/goptuna
    v0.8.0 cmaes/sampler.go (supportedSearchSpace) leaves the others to a random sampler.
    """
    numeric = [n for n, s in spaces.items() if s["type"] in ("int", "double")]
    if len(numeric) < 2:
        findings.error(
            ("spec", "tuning", "parameters"),
            "tuning-algorithm",
            "cmaes needs at least two int or double parameters; Katib's goptuna service"
            f" rejects {len(numeric) or 'none'}",
        )
    for name, space in spaces.items():
        if space["type"] in ("categorical", "discrete"):
            findings.warning(
                ("spec", "tuning", "parameters", name, "type"),
                "tuning-algorithm",
                f"cmaes tunes only int and double parameters: `{name}` ({space['type']}) is"
                " sampled at random, outside CMA-ES",
            )


def _check_hyperband(
    tuning: dict[str, Any], spaces: dict[str, dict[str, Any]], findings: Findings
) -> None:
    """The rules of Katib's hyperband service (hyperband/service.py:251-297)."""
    path = ("spec", "tuning", "algorithm")
    settings = tuning["algorithm"].get("settings", {})
    if settings.get("resource_name") not in spaces:
        findings.error(
            (*path, "settings", "resource_name") if "resource_name" in settings else path,
            "tuning-algorithm",
            "hyperband needs `settings.resource_name` naming a tuned parameter"
            " (the budget, e.g. epochs)",
        )
    if "r_l" not in settings:
        findings.error(
            path,
            "tuning-algorithm",
            "hyperband needs `settings.r_l`, the largest budget a trial gets (e.g. 9)",
        )
        return
    try:
        budget = float(setting_text(settings["r_l"]))
    except ValueError:
        budget = math.nan
    if not budget > 0:
        findings.error(
            (*path, "settings", "r_l"),
            "tuning-setting",
            f"`r_l` must be a number greater than 0, not `{setting_text(settings['r_l'])}`",
        )
        return
    eta = 3
    if "eta" in settings:
        text = setting_text(settings["eta"])
        try:
            eta = int(float(text))
        except (ValueError, OverflowError):
            findings.error(
                (*path, "settings", "eta"),
                "tuning-setting",
                f"`eta` must be a number, not `{text}`",
            )
            return
        if eta == 1:
            findings.error(
                (*path, "settings", "eta"),
                "tuning-setting",
                f"`eta` {text} is 1 once Katib's hyperband truncates it to a whole number,"
                " which it cannot divide by; use 2 or more",
            )
            return
        if eta <= 0:
            findings.warning(
                (*path, "settings", "eta"),
                "tuning-setting",
                f"`eta` {text} is not positive; Katib's hyperband uses 3 instead",
            )
            eta = 3
    brackets = int(math.log(budget) / math.log(eta))
    needed = math.ceil(eta**brackets)
    parallel = tuning.get("parallelTrials", DEFAULT_PARALLEL_TRIALS)
    if parallel < needed:
        findings.error(
            ("spec", "tuning", "parallelTrials") if "parallelTrials" in tuning else path,
            "tuning-counts",
            f"hyperband with r_l {setting_text(settings['r_l'])} and eta {eta} runs {needed}"
            f" trials at once in its first bracket; Katib rejects `parallelTrials` {parallel}:"
            f" set it to at least {needed}",
        )

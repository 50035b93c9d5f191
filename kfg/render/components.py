"""The Python source of each step's Kubeflow lightweight component.

kfp builds a lightweight component from a function's source, so kfg writes that function:
its signature declares exactly the parameters and artifacts the data-flow analysis found,
and its body carries the step's cells and names the step runtime by digest (runtime_volume),
so KFP's cache key changes exactly when the step's code, the prelude, the runtime, the
image, the packages or the inputs change.

This module only produces text; it never imports kfp.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import cache

from kfg.analysis.dataflow import Flow, StepFlow
from kfg.config.model import Pipeline, Step
from kfg.kube.names import input_name, output_name
from kfg.notebook.reader import Notebook
from kfg.render import runtime_volume

CLOUDPICKLE = "cloudpickle==3.1.2"
METRICS_OUTPUT = "kfg_metrics"
REPORT_OUTPUT = "kfg_report"


def function_name(step: str) -> str:
    """A Python identifier for a step name (a DNS label); kfp derives the component name."""
    name = step.replace("-", "_")
    if name[0].isdigit():
        return f"step_{name}"
    return f"{name}_step" if keyword.iskeyword(name) else name


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def literal(text: str) -> str:
    """A triple-quoted Python literal for `text`, readable in a pull-request diff."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return "'''" + escaped + "'''"


@cache
def _runtime_literal() -> str:
    return literal(runtime_volume.runtime_text())


@dataclass(frozen=True)
class Component:
    step: str
    function: str
    source: str
    packages: tuple[str, ...]
    parameters: tuple[str, ...]
    inputs: dict[str, str]  # variable -> producing step
    outputs: tuple[str, ...]
    metrics: bool


def _python_type(pipeline: Pipeline, name: str) -> str:
    parameter = pipeline.parameter(name)
    assert parameter is not None
    return parameter.type_name


def _cells(notebook: Notebook, positions: tuple[int, ...]) -> str:
    if not positions:
        return "[]"
    rows = [f"        ({p}, {literal(notebook.cell(p).source)})," for p in positions]
    return "[\n" + "\n".join(rows) + "\n    ]"


def step_packages(step: Step, flow: Flow, here: StepFlow) -> tuple[str, ...]:
    """The step's packages, plus cloudpickle when functions or classes cross this step."""
    carries_code = bool(here.code_outputs) or any(
        variable in flow.step(source).code_outputs for variable, source in here.inputs.items()
    )
    declared = {p.split("==")[0].split("[")[0].strip().lower() for p in step.packages}
    if carries_code and "cloudpickle" not in declared:
        return (*step.packages, CLOUDPICKLE)
    return step.packages


def build_component(pipeline: Pipeline, flow: Flow, notebook: Notebook, step: Step) -> Component:
    here = flow.step(step.name)
    metrics = {m.name: m.variable for m in pipeline.metrics if m.step == step.name}
    function = function_name(step.name)
    signature = [f"    {p}: {_python_type(pipeline, p)}," for p in here.parameters]
    signature += [f"    {input_name(v)}: Input[Artifact]," for v in here.inputs]
    signature += [f"    {output_name(v)}: Output[Artifact]," for v in here.outputs]
    if metrics:
        signature.append(f"    {METRICS_OUTPUT}: Output[Metrics],")
    signature.append(f"    {REPORT_OUTPUT}: Output[HTML],")
    cells = ", ".join(str(c) for c in step.cells)
    lines = [
        f"def {function}(",
        *signature,
        "):",
        f'    """Step `{step.name}` of `{pipeline.name}`: cells {cells} of'
        f' {pipeline.notebook.name}, rendered by kfg."""',
    ]
    if step.runtime == "image":
        lines.append("    from kfg.runtime.step import main")
    elif step.runtime == "mounted":
        lines += runtime_volume.loader_lines(pipeline.name)
    else:  # embedded: the whole runtime in this component, for IR that travels alone
        lines += [
            "    import types",
            "",
            f"    runtime = {_runtime_literal()}",
            '    module = types.ModuleType("kfg_step_runtime")',
            '    exec(compile(runtime, "kfg_step_runtime.py", "exec"), module.__dict__)',
            "    main = module.main",
        ]
    parameters = ", ".join(f"{p!r}: {p}" for p in here.parameters)
    inputs = ", ".join(f"{v!r}: {input_name(v)}.path" for v in here.inputs)
    outputs = ", ".join(f"{v!r}: {output_name(v)}.path" for v in here.outputs)
    lines += [
        "    main(",
        f"        pipeline={pipeline.name!r},",
        f"        step={step.name!r},",
        f"        prelude={_cells(notebook, pipeline.prelude)},",
        f"        cells={_cells(notebook, step.cells)},",
        f"        parameters={{{parameters}}},",
        f"        inputs={{{inputs}}},",
        f"        outputs={{{outputs}}},",
        f"        metrics={metrics!r},",
        f"        report={REPORT_OUTPUT}.path,",
        f"        log_metric={METRICS_OUTPUT + '.log_metric' if metrics else 'None'},",
        *([f"        consumers={flow.consumers(step.name)!r},"] if here.outputs else []),
        "    )",
        "",
    ]
    return Component(
        step=step.name,
        function=function,
        source="\n".join(lines),
        packages=step_packages(step, flow, here),
        parameters=here.parameters,
        inputs=here.inputs,
        outputs=here.outputs,
        metrics=bool(metrics),
    )

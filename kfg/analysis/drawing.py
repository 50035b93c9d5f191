"""The step graph as text, Mermaid or Graphviz DOT, with the variables on every edge.

Mermaid is what GitHub renders in pull-request comments and Markdown; DOT is for
Graphviz users; text is for the terminal. All three list steps in notebook order so the
output is stable and reviewable.
"""

from __future__ import annotations

import json

from kfg.analysis.dataflow import Flow

FORMATS = ("text", "mermaid", "dot")


def _join(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names)


def as_text(name: str, flow: Flow) -> str:
    lines = [f"{name}: {len(flow.steps)} steps, {len(flow.edges)} edges"]
    for step in flow.steps:
        lines.append(f"  {step.name}")
        for edge in (e for e in flow.edges if e.target == step.name):
            carried = _join(edge.variables) if edge.variables else "(after, no data)"
            lines.append(f"    <- {edge.source}: {carried}")
        if step.parameters:
            lines.append(f"    parameters: {_join(step.parameters)}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def as_mermaid(name: str, flow: Flow) -> str:
    ids = {step.name: f"s{index}" for index, step in enumerate(flow.steps)}
    lines = ["flowchart TD"]
    for step in flow.steps:
        label = step.name
        if step.parameters:
            label += f"<br/><small>{_join(step.parameters)}</small>"
        lines.append(f'  {ids[step.name]}["{_mermaid_text(label)}"]')
    for edge in flow.edges:
        arrow = f'-->|"{_join(edge.variables)}"|' if edge.variables else "-.->"
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def _dot(text: str) -> str:
    return json.dumps(text)  # a double-quoted DOT ID with the same escapes


def as_dot(name: str, flow: Flow) -> str:
    lines = [f"digraph {_dot(name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for step in flow.steps:
        label = step.name
        if step.parameters:
            label += f"\n({_join(step.parameters)})"  # JSON's \n is DOT's centred line break
        lines.append(f"  {_dot(step.name)} [label={_dot(label)}];")
    for edge in flow.edges:
        style = f"label={_dot(_join(edge.variables))}" if edge.variables else "style=dashed"
        lines.append(f"  {_dot(edge.source)} -> {_dot(edge.target)} [{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(name: str, flow: Flow, fmt: str) -> str:
    return {"text": as_text, "mermaid": as_mermaid, "dot": as_dot}[fmt](name, flow)

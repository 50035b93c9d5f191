"""Cycles in a dependency graph: the one place kfg looks for steps that wait on each other.

Both kinds of edge meet here: `after:` in kale.yaml (checked early, without the notebook)
and the data edges the analysis finds (a step reading what another defines). A cycle of
either kind, or of both together, would leave the local scheduler and Kubeflow waiting for
ever, so it is an error wherever it is found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as the list of its nodes (each waits for the next, the last for the first)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
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
            edges = graph.get(node, ())
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

"""Static data flow between steps: which variables and parameters each step needs.

The notebook is never executed. Every step runs the prelude, then its own cells; a name a
step reads that it has not bound itself comes from the latest earlier step that bound,
mutated or deleted it (notebook order is execution order), from a pipeline parameter, from
the prelude, or from the builtins, in that order. Anything else is an error, found here
rather than an hour into a cluster run.

The result decides the pipeline's shape: one edge per (producer, consumer) pair carrying
the variables, and for each step exactly the parameters it reads, so that with caching a
trial that changes one parameter re-runs only the steps that depend on it.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kfg.config.model import Pipeline
from kfg.diagnostics import Severity
from kfg.notebook.reader import Notebook
from kfg.pysource.graph import find_cycle
from kfg.pysource.scopes import UNPASSABLE, CodeFacts, Event, Kind, code_facts
from kfg.pysource.source import parse_cell

# Names a notebook kernel provides without an import.
NOTEBOOK_NAMES = frozenset(
    {"display", "get_ipython", "In", "Out", "exit", "quit", "__name__", "__file__", "__doc__"}
)
KNOWN = frozenset(dir(builtins)) | NOTEBOOK_NAMES

# How a producer bound a name: these values need cloudpickle to travel between steps.
BY_VALUE_CODE = frozenset({"def", "class"})


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str
    message: str
    step: str | None  # None: the prelude
    field: str = "cells"  # the key of the step's kale.yaml entry the problem is about


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    variables: tuple[str, ...]  # empty for an `after` edge with no data


@dataclass(frozen=True)
class StepFlow:
    name: str
    inputs: dict[str, str]  # variable -> the step it comes from
    outputs: tuple[str, ...]  # variables later steps read from this one, sorted
    parameters: tuple[str, ...]  # pipeline parameters it reads, sorted
    upstream: tuple[str, ...]  # steps it waits for, in notebook order
    code_outputs: tuple[str, ...] = ()  # outputs that are functions or classes


@dataclass(frozen=True)
class Flow:
    steps: tuple[StepFlow, ...]
    edges: tuple[Edge, ...]
    problems: tuple[Problem, ...] = ()

    def step(self, name: str) -> StepFlow:
        return next(s for s in self.steps if s.name == name)

    def consumers(self, name: str) -> dict[str, list[str]]:
        """For each output of step `name`, the steps that read it, in notebook order."""
        return {
            variable: [s.name for s in self.steps if s.inputs.get(variable) == name]
            for variable in self.step(name).outputs
        }

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)


@dataclass
class _Cell:
    position: int
    facts: CodeFacts


@dataclass
class _Origin:
    step: str  # "" for parameters and the prelude
    deleted: bool = False
    how: str = "value"


@dataclass
class _StepState:
    name: str
    local: set[str] = field(default_factory=set)
    changed: dict[str, str] = field(default_factory=dict)  # name -> how it was bound
    deleted: set[str] = field(default_factory=set)
    rebound: set[str] = field(default_factory=set)
    needs: dict[str, frozenset[str]] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    parameters: set[str] = field(default_factory=set)
    star: bool = False
    aliases: dict[str, str] = field(default_factory=dict)  # `m = l`: m -> l


def _cells(notebook: Notebook, positions: Iterable[int]) -> list[_Cell]:
    cells = []
    for position in positions:
        tree = parse_cell(notebook.cell(position).source)
        if isinstance(tree, ast.Module):  # syntax errors are reported by the config checks
            cells.append(_Cell(position, code_facts(tree)))
    return cells


class _Analysis:
    def __init__(self, pipeline: Pipeline, notebook: Notebook) -> None:
        self.pipeline = pipeline
        self.parameters = {p.name for p in pipeline.parameters}
        self.problems: list[Problem] = []
        self.latest: dict[str, _Origin] = {}
        self.needs: dict[str, frozenset[str]] = {}
        self.binds: dict[str, frozenset[str]] = {}  # the globals each function assigns
        # (alias, original, step): two names for one object since that step's `m = l`.
        self.shared: set[tuple[str, str, str]] = set()
        # (step, other name, message): reported if a later step reads the other name.
        self.pending_shared: list[tuple[str, str, str]] = []
        self.prelude_star = False
        self.prelude_parameters: set[str] = set()
        self.notebook = notebook

    def problem(
        self, severity: Severity, code: str, message: str, step: str | None, field: str = "cells"
    ) -> None:
        self.problems.append(Problem(severity, code, message, step, field))

    def run(self) -> Flow:
        self._prelude()
        states = []
        for step in self.pipeline.steps:
            state = _StepState(step.name, star=self.prelude_star)
            state.parameters |= self.prelude_parameters
            for cell in _cells(self.notebook, step.cells):
                self._step_cell(state, cell)
            for name in state.rebound:  # another object now: no longer one with any name
                self.shared = {pair for pair in self.shared if name not in pair[:2]}
            for alias, original in state.aliases.items():
                self.shared.add((alias, original, step.name))
            for name, how in state.changed.items():
                self.latest[name] = _Origin(step.name, how=how)
                if name in state.needs:
                    self.needs[name] = state.needs[name]
                elif name in state.rebound:  # no longer the function it was
                    self.needs.pop(name, None)
            for name in state.deleted:
                self.latest[name] = _Origin(step.name, deleted=True)
            states.append(state)
        order = [s.name for s in states]
        for step_name, other, message in self.pending_shared:
            later = states[order.index(step_name) + 1 :]
            if any(other in s.inputs for s in later):
                self.problem(Severity.WARNING, "shared-object", message, step_name)
        return self._flow(states)

    def _prelude(self) -> None:
        state = _StepState("")
        for cell in _cells(self.notebook, self.pipeline.prelude):
            for event in cell.facts.events:
                where = f"prelude cell {cell.position}, line {event.line}"
                if event.kind is Kind.STAR_IMPORT:
                    self.prelude_star = True
                    self._star_warning(where, event, None)
                elif event.kind is Kind.BIND:
                    state.local.add(event.name)
                elif event.kind is not Kind.READ or event.name in state.local:
                    continue
                elif event.name in self.parameters:
                    self.prelude_parameters.add(event.name)  # every step runs the prelude
                elif event.name not in KNOWN and not self.prelude_star:
                    self.problem(
                        Severity.ERROR,
                        "undefined-name",
                        f"{where}: `{event.name}` is read before anything defines it"
                        " (the prelude runs first in every step)",
                        None,
                    )
            self.needs.update(cell.facts.needs)
            self.binds.update(cell.facts.binds)
        for name in state.local:
            self.latest[name] = _Origin("")

    def _star_warning(self, where: str, event: Event, step: str | None) -> None:
        self.problem(
            Severity.WARNING,
            "star-import",
            f"{where}: `from {event.name} import *` hides which names it defines; kfg cannot"
            " check names read after it (import the names you use)",
            step,
        )

    def _step_cell(self, state: _StepState, cell: _Cell) -> None:
        for event in cell.facts.events:
            where = f"step `{state.name}`: cell {cell.position}, line {event.line}"
            if event.kind is Kind.STAR_IMPORT:
                state.star = True
                self._star_warning(where, event, state.name)
            elif event.kind is Kind.DYNAMIC:
                self.problem(
                    Severity.WARNING,
                    "dynamic-names",
                    f"{where}: `{event.name}()` can read and define variables by name, which"
                    " kfg cannot see; other steps will not receive what it defines",
                    state.name,
                )
            elif event.kind is Kind.MAGIC:
                self.problem(
                    Severity.ERROR,
                    "unsupported-magic",
                    f"{where}: {event.name} does not run in a pipeline step; move its cell to"
                    " `skip` (steps run %pip, %time, %timeit, %prun, %env, %cd, !shell,"
                    " %%bash, %%writefile, %%capture and skip %matplotlib-like settings)",
                    state.name,
                )
            elif event.kind is Kind.SHELL_READ:
                if self._known(state, event.name):
                    self._read(state, event.name, f"{where} (in a shell line)", set())
            elif event.kind is Kind.READ:
                self._read(state, event.name, where, set())
                # Using a function that assigns globals (most likely calling it) binds them
                # here: a later step reads them from this step, not from the one defining it.
                for name in sorted(self._binds_through(cell, event.name, set())):
                    self._bind(state, name, "value", None)
            elif event.kind is Kind.BIND:
                if event.how in BY_VALUE_CODE:
                    self.binds[event.name] = cell.facts.binds.get(event.name, frozenset())
                else:
                    self.binds.pop(event.name, None)
                self._bind(state, event.name, event.how, cell)
            elif event.kind is Kind.ALIAS:
                state.aliases[event.name] = event.how
            elif event.kind is Kind.MUTATE:
                # Changing an object in place makes this step its producer, whether it came
                # from an earlier step, the prelude or a parameter; and of every name known
                # to hold the same object (`m = l; m.append(1)` changes `l`).
                for name in self._same_object(state, event.name):
                    if name in state.local or name in self.latest or name in self.parameters:
                        state.local.add(name)
                        state.changed.setdefault(name, "value")
                if event.name not in state.rebound:
                    self._shared_warning(state, event.name, where)
            elif event.kind is Kind.DELETE:
                state.aliases.pop(event.name, None)
                state.local.discard(event.name)
                state.changed.pop(event.name, None)
                state.deleted.add(event.name)

    def _shared_warning(self, state: _StepState, name: str, where: str) -> None:
        """Steps pass each variable on its own: two names for one object in the notebook
        (`m = l` in an earlier step) are two objects in the next step."""
        for alias, original, step in sorted(self.shared):
            if name not in (alias, original):
                continue
            other = original if name == alias else alias
            self.pending_shared.append(
                (
                    state.name,
                    other,
                    f"{where}: `{name}` is changed in place, but in the notebook it is the same"
                    f" object as `{other}` (step `{step}`: `{alias} = {original}`), which a"
                    " later step reads; steps pass each variable on its own, so it will not"
                    f" see the change. Change `{other}` itself, or copy it"
                    f" (`{alias} = {original}.copy()`)",
                )
            )

    @staticmethod
    def _same_object(state: _StepState, name: str) -> list[str]:
        """`name` and the names it was assigned from in this step, `m = l` after `l = k`."""
        names = [name]
        while names[-1] in state.aliases and state.aliases[names[-1]] not in names:
            names.append(state.aliases[names[-1]])
        return names

    def _bind(self, state: _StepState, name: str, how: str, cell: _Cell | None) -> None:
        state.aliases.pop(name, None)
        state.local.add(name)
        state.rebound.add(name)
        state.deleted.discard(name)
        state.changed[name] = how
        if cell is not None and name in cell.facts.needs and how in BY_VALUE_CODE:
            state.needs[name] = cell.facts.needs[name]
        else:
            state.needs.pop(name, None)

    def _binds_through(self, cell: _Cell, function: str, seen: set[str]) -> set[str]:
        """The globals calling `function` may assign: its own, and those of the functions
        it uses in turn (`init()` calling `setup()`, which sets `global cfg`)."""
        if function in seen or function not in self.binds:
            return set()
        seen.add(function)
        found = set(self.binds[function])
        needs = cell.facts.needs.get(function, self.needs.get(function, frozenset()))
        for needed in needs:
            found |= self._binds_through(cell, needed, seen)
        return found

    def _known(self, state: _StepState, name: str) -> bool:
        """Whether a name is a variable here: bound in this step or earlier, or a parameter."""
        return name in state.local or name in self.latest or name in self.parameters

    def _read(self, state: _StepState, name: str, where: str, seen: set[str]) -> None:
        if name in seen:
            return
        seen.add(name)
        if name in state.local:
            self._read_needs(state, state.needs.get(name), where, seen)
            return
        if name in state.deleted:
            self.problem(
                Severity.ERROR, "deleted-name", f"{where}: `{name}` is read after `del`", state.name
            )
            return
        origin = self.latest.get(name)
        if origin is not None and origin.deleted:
            self.problem(
                Severity.ERROR,
                "deleted-name",
                f"{where}: `{name}` is read, but step `{origin.step}` deleted it",
                state.name,
            )
            return
        if origin is not None and origin.step:
            state.inputs[name] = origin.step
            state.local.add(name)
            if origin.how in UNPASSABLE:
                self.problem(
                    Severity.WARNING,
                    "unpassable-value",
                    f"{where}: `{name}` holds {UNPASSABLE[origin.how]} made in step"
                    f" `{origin.step}`, which cannot be saved to pass it to step"
                    f" `{state.name}`; make it in this step instead (move the cell that"
                    " creates it here), or pass what it is made from and rebuild it",
                    state.name,
                )
            if origin.how == "import":
                self.problem(
                    Severity.WARNING,
                    "imported-name-passed",
                    f"{where}: `{name}` was imported by step `{origin.step}`, so it reaches"
                    f" step `{state.name}` as data (by name, without any setup done on it);"
                    " import it in the prelude, or again in this step",
                    state.name,
                )
            self._read_needs(state, self.needs.get(name), where, seen)
            return
        if origin is not None:  # the prelude
            self._read_needs(state, self.needs.get(name), where, seen)
            return
        if name in self.parameters:
            state.parameters.add(name)
            return
        if name in KNOWN or state.star:
            return
        self.problem(
            Severity.ERROR,
            "undefined-name",
            f"{where}: `{name}` is read before any step defines it",
            state.name,
        )

    def _read_needs(
        self, state: _StepState, needs: frozenset[str] | None, where: str, seen: set[str]
    ) -> None:
        """Calling a function reads the globals its body reads: they must be there too."""
        for needed in sorted(needs or ()):
            if needed not in state.local:
                self._read(state, needed, f"{where} (via a function that reads it)", seen)

    def _flow(self, states: Sequence[_StepState]) -> Flow:
        order = {s.name: i for i, s in enumerate(states)}
        outputs: dict[str, set[str]] = {s.name: set() for s in states}
        for state in states:
            for variable, source in state.inputs.items():
                outputs[source].add(variable)
        edges: list[Edge] = []
        flows: list[StepFlow] = []
        for state, step in zip(states, self.pipeline.steps, strict=True):
            by_source: dict[str, list[str]] = {}
            for variable, source in state.inputs.items():
                by_source.setdefault(source, []).append(variable)
            for after in step.after:
                by_source.setdefault(after, [])
            upstream = tuple(sorted(by_source, key=order.__getitem__))
            edges.extend(
                Edge(source, state.name, tuple(sorted(by_source[source]))) for source in upstream
            )
            flows.append(
                StepFlow(
                    name=state.name,
                    inputs=dict(sorted(state.inputs.items())),
                    outputs=tuple(sorted(outputs[state.name])),
                    parameters=tuple(sorted(state.parameters)),
                    upstream=upstream,
                    code_outputs=tuple(
                        sorted(
                            v for v in outputs[state.name] if state.changed.get(v) in BY_VALUE_CODE
                        )
                    ),
                )
            )
        self._check_cycles(flows, edges)
        return Flow(tuple(flows), tuple(edges), tuple(self.problems))

    def _check_cycles(self, flows: list[StepFlow], edges: list[Edge]) -> None:
        """`after:` pointing at a later step that reads this one's data waits for ever."""
        cycle = find_cycle({f.name: f.upstream for f in flows})
        if cycle is None:
            return
        by_pair = {(e.target, e.source): e for e in edges}
        links = []
        for waiting, awaited in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
            variables = by_pair[(waiting, awaited)].variables
            if variables:
                names = ", ".join(f"`{v}`" for v in variables)
                links.append(f"`{waiting}` reads {names} from `{awaited}`")
            else:
                links.append(f"`{waiting}` runs after `{awaited}` (after:)")
        blamed = next(
            (
                w
                for w, a in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
                if not by_pair[(w, a)].variables
            ),
            cycle[0],
        )
        self.problem(
            Severity.ERROR,
            "cycle",
            "steps wait for each other in a cycle: "
            + " -> ".join([*cycle, cycle[0]])
            + " ("
            + "; ".join(links)
            + ")",
            blamed,
            field="after",
        )


def upstream_of(flow: Flow, names: Iterable[str]) -> tuple[str, ...]:
    """`names` and every step they wait for, directly or through others, in pipeline order.

    What a step computes can depend only on these: they are all that runs before it.
    """
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(flow.step(name).upstream)
    return tuple(s.name for s in flow.steps if s.name in wanted)


def analyse(pipeline: Pipeline, notebook: Notebook) -> Flow:
    """The steps' inputs, outputs and parameters, the edges, and the problems found."""
    return _Analysis(pipeline, notebook).run()

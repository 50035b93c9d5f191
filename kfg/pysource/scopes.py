"""What a piece of notebook code does with names, in the order it does it.

The data-flow analysis needs more than "which names does this cell bind": it needs the
order of reads, bindings, in-place mutations and deletions at module scope, and for every
function or class, the global names its body will read when it is called. Python's own
scoping rules decide both, so they are followed exactly: function, lambda, class and
comprehension bodies are their own scopes, class scopes are invisible to their methods,
`global` and `nonlocal` move names out of a scope, and the walrus operator binds in the
enclosing scope even inside a comprehension.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

# Methods that change their receiver in place. Calling one on an object another step
# defined makes this step a new producer of that object. The list is deliberately about
# the libraries notebooks use; `inplace=True` on any call counts as well.
MUTATING_METHODS = frozenset(
    {
        # list, dict, set, bytearray, deque
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "remove",
        "pop",
        "popleft",
        "popitem",
        "clear",
        "sort",
        "reverse",
        "rotate",
        "update",
        "setdefault",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        # numpy
        "fill",
        "put",
        "itemset",
        "resize",
        "setflags",
        "partition",
        # pandas (besides inplace=True; DataFrame.insert is listed above)
        "set_axis",
        # scikit-learn, Keras, PyTorch, XGBoost, LightGBM
        "fit",
        "partial_fit",
        "fit_transform",
        "fit_predict",
        "set_params",
        "set_output",
        "compile",
        "load_state_dict",
        "train",
        "eval",
        "zero_grad",
        "step",
        "load_weights",
        "set_weights",
    }
)


# Calls that reach the module namespace through strings, which no static analysis follows.
DYNAMIC_CALLS = frozenset({"exec", "eval", "globals", "locals"})


class Kind(str, Enum):
    READ = "read"
    BIND = "bind"
    MUTATE = "mutate"
    DELETE = "delete"
    STAR_IMPORT = "star-import"
    DYNAMIC = "dynamic"  # exec, eval, globals(): names used through strings
    # `!cp {src} $dst`: read if a variable of that name exists; otherwise IPython runs the
    # line as written (`$HOME` is the shell's), so it is not an error.
    SHELL_READ = "shell-read"
    MAGIC = "magic"  # a magic the step runtime does not run (name: `%prun`, `%%R`)
    ALIAS = "alias"  # `m = l`: name is another name for the object `how` names


@dataclass(frozen=True)
class Event:
    kind: Kind
    name: str
    line: int
    # For BIND: what bound the name ("def", "class", "lambda", "import", "value", or one of
    # UNPASSABLE's kinds), which decides how the value travels to another step.
    how: str = "value"


# Values no serializer between steps can save, by the expression that makes them: what
# kfg can tell a user before a run fails on them. Only certain cases; a generator function
# called, a lock or a socket are not recognised by their expression.
UNPASSABLE = {"generator": "a generator", "file": "a file object"}


def unpassable(value: ast.expr) -> str | None:
    """The UNPASSABLE kind of the value `value` makes, if it is one."""
    if isinstance(value, ast.GeneratorExp):
        return "generator"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "open":
        return "file"
    return None


@dataclass
class CodeFacts:
    """The module-level name events of some code, and what its functions will read."""

    events: list[Event] = field(default_factory=list)
    # Global names a function's or class's body reads when it runs, by the name it is bound to.
    needs: dict[str, frozenset[str]] = field(default_factory=dict)
    # Global names a function assigns (`global g; g = ...`) when it runs, by its name.
    binds: dict[str, frozenset[str]] = field(default_factory=dict)


def _arg_names(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    return {a.arg for a in every}


class _Scope(ast.NodeVisitor):
    """Collects the loads, stores and declarations of one function-like scope."""

    def __init__(self) -> None:
        self.loads: set[str] = set()
        self.stores: set[str] = set()
        self.declared: set[str] = set()  # global and nonlocal
        self.nested: set[str] = set()  # free names of nested scopes
        self.walrus: set[str] = set()

    def free(self) -> set[str]:
        local = self.stores - self.declared
        return (self.loads | self.nested) - local

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.stores.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared.update(node.names)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.stores.add(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.stores.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.stores.add(node.rest)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.stores.add(node.target.id)
            self.walrus.add(node.target.id)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stores.add(node.name)
        for expr in _evaluated_at_definition(node):
            self.visit(expr)
        self.nested |= function_free_names(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(expr)
        self.nested |= function_free_names(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stores.add(node.name)
        for expr in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
            self.visit(expr)
        body, methods = class_free_names(node)
        self.nested |= body | methods

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        self.visit(node.generators[0].iter)
        free, walrus = comprehension_free_names(node)
        self.nested |= free
        self.stores |= walrus
        self.walrus |= walrus

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension


def _evaluated_at_definition(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """Decorators, defaults and annotations: evaluated where the function is defined."""
    args = node.args
    every = [*node.decorator_list, *args.defaults, *(d for d in args.kw_defaults if d)]
    annotated = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    every += [a.annotation for a in annotated if a is not None and a.annotation is not None]
    if node.returns is not None:
        every.append(node.returns)
    return every


def function_free_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names the body reads from enclosing scopes when the function runs."""
    scope = _Scope()
    scope.stores |= _arg_names(node.args)
    body: Iterable[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else node.body
    for statement in body:
        scope.visit(statement)
    return scope.free()


def class_free_names(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(names the class body reads when it is defined, names its methods read when called)."""
    scope = _Scope()
    for statement in node.body:
        scope.visit(statement)
    local = scope.stores - scope.declared
    return scope.loads - local, scope.nested


def comprehension_free_names(
    node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
) -> tuple[set[str], set[str]]:
    """(free names except the first iterable's, names bound by walrus in the enclosing scope)."""
    scope = _Scope()
    targets: set[str] = set()
    for index, generator in enumerate(node.generators):
        if index:
            scope.visit(generator.iter)
        target = _Scope()
        target.visit(generator.target)
        targets |= target.stores
        for condition in generator.ifs:
            scope.visit(condition)
    parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    for part in parts:
        scope.visit(part)
    walrus = scope.walrus
    # A name the comprehension binds with `:=` is its own when read there too, as in
    # `[w for i in xs if (w := f(i))]`: the condition runs before the element.
    return (scope.loads | scope.nested) - targets - scope.stores, walrus


def _base_name(node: ast.expr) -> str | None:
    """`df` for `df`, `df.a.b`, `df["x"][0]` and `df.loc[1]`."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


# Functions that change their first argument in place: builtins (`next` advances an
# iterator), heapq, random and numpy's shuffle and copyto.
MUTATING_FUNCTIONS = frozenset(
    {"setattr", "delattr", "next", "shuffle", "copyto", "heapify", "heappush", "heappop"}
    | {"heappushpop", "heapreplace"}
)


def _mutates(call: ast.Call) -> list[str]:
    """The names of the objects a call visibly changes in place."""
    func = call.func
    changed: list[str | None] = []
    if isinstance(func, ast.Attribute):
        inplace = any(
            k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in call.keywords
        )
        if inplace or func.attr in MUTATING_METHODS:
            changed.append(_base_name(func.value))
    final = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if final in MUTATING_FUNCTIONS and call.args:
        changed.append(_base_name(call.args[0]))
    for keyword in call.keywords:  # numpy's `out=`: `np.add(v, 1, out=v)` writes into v
        if keyword.arg == "out":
            values = keyword.value.elts if isinstance(keyword.value, ast.Tuple) else [keyword.value]
            changed += [_base_name(v) for v in values]
    return [name for name in changed if name is not None]


def _ipython_call(call: ast.Call) -> tuple[str, list[str]] | None:
    """(method, leading string arguments) of a translated IPython line, such as
    `get_ipython().run_cell_magic('bash', '--out x', body)`; None for any other call."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return None
    texts: list[str] = []
    for argument in call.args:
        if not isinstance(argument, ast.Constant) or not isinstance(argument.value, str):
            break
        texts.append(argument.value)
    return func.attr, texts


def _ipython_binds(call: ast.Call) -> list[str]:
    """What a translated IPython line binds besides its assignment: `_exit_code` for a
    shell line, the variables of `%%bash --out listing` (kfg.runtime.step.script_options)."""
    found = _ipython_call(call)
    if found is None:
        return []
    method, texts = found
    if method in ("system", "getoutput"):
        return ["_exit_code"]
    if method != "run_cell_magic" or len(texts) < 2:
        return []
    (name, line, *_) = texts
    if name not in ("bash", "sh", "script") or "--" not in line:
        return []
    from kfg.runtime.step import script_options

    script = script_options(name, line)
    return [name for name in (script.out, script.err) if name is not None]


def _unsupported_magic(call: ast.Call) -> str | None:
    """`%prun` for a translated magic (`get_ipython().run_line_magic('prun', ...)`) that
    the step runtime does not run (kfg.runtime.step.LINE_MAGICS and CELL_MAGICS)."""
    found = _ipython_call(call)
    if found is None or found[0] not in ("run_line_magic", "run_cell_magic") or not found[1]:
        return None
    from kfg.runtime.step import CELL_MAGICS, LINE_MAGICS, TIMING_RESULTS, timed_statement

    name = found[1][0]
    if found[0] == "run_line_magic":
        if name in TIMING_RESULTS and len(found[1]) > 1:
            # `r = %timeit -o f(x)` asks for a timing result, which a step does not measure.
            result = TIMING_RESULTS[name]
            if result in timed_statement(name, found[1][1])[1]:
                return f"%{name} -{result}"
        return None if name in LINE_MAGICS else f"%{name}"
    return None if name in CELL_MAGICS else f"%%{name}"


def _shell_reads(call: ast.Call) -> set[str]:
    """The variables a translated shell or magic line (`get_ipython().system('cp {src}
    $dst')`, `%cd {folder}`, `%%writefile {path}`) expands, by the runtime's own reading of
    the line (kfg.runtime.step.shell_fields)."""
    found = _ipython_call(call)
    if found is None:
        return set()
    from kfg.runtime.step import NOT_EXPANDED, shell_fields

    method, texts = found
    if method in ("system", "getoutput") and texts:
        command = texts[0]
    elif method in ("run_line_magic", "run_cell_magic") and len(texts) > 1:
        if texts[0] in NOT_EXPANDED:
            return set()
        command = texts[1]
    else:
        return set()
    if "{" not in command and "$" not in command:
        return set()
    names: set[str] = set()
    try:
        fields = shell_fields(command)
    except ValueError:
        return set()  # unbalanced braces: the runtime runs the line as written
    for _, expression, _ in fields:
        try:
            tree = ast.parse(expression, mode="eval") if expression else None
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if tree is not None:
            names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names


class _ModuleFacts(ast.NodeVisitor):
    """Module-level events, in evaluation order."""

    def __init__(self, line_offset: int = 0) -> None:
        self.facts = CodeFacts()
        self.offset = line_offset

    def _event(self, kind: Kind, name: str, node: ast.AST, how: str = "value") -> None:
        line = getattr(node, "lineno", 1) + self.offset
        self.facts.events.append(Event(kind, name, line, how))

    def _reads(self, names: Iterable[str], node: ast.AST) -> None:
        for name in sorted(names):
            self._event(Kind.READ, name, node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._event(Kind.READ, node.id, node)
        elif isinstance(node.ctx, ast.Store):
            self._event(Kind.BIND, node.id, node)
        else:
            self._event(Kind.READ, node.id, node)
            self._event(Kind.DELETE, node.id, node)

    def _target(self, target: ast.expr) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target)  # reads the base (and the subscript)
            base = _base_name(target)
            if base is not None:
                self._event(Kind.MUTATE, base, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        else:
            self.visit(target)

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, ast.Lambda) and all(
            isinstance(t, ast.Name) for t in node.targets
        ):
            self._named_lambda(node.value, [t.id for t in node.targets if isinstance(t, ast.Name)])
            return
        self.visit(node.value)
        for target in node.targets:
            self._target(target)
            if isinstance(target, ast.Name):
                self._bound_as(target.id, unpassable(node.value))
        if isinstance(node.value, ast.Name):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id != node.value.id:
                    self._event(Kind.ALIAS, target.id, target, node.value.id)

    def visit_withitem(self, node: ast.withitem) -> None:
        self.generic_visit(node)  # the context expression, then the name it binds
        if isinstance(node.optional_vars, ast.Name):
            self._bound_as(node.optional_vars.id, unpassable(node.context_expr))

    def _bound_as(self, name: str, how: str | None) -> None:
        """Say what kind of value the name just bound holds (its last BIND event)."""
        if how is None:
            return
        events = self.facts.events
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if event.kind is Kind.BIND and event.name == name:
                events[index] = dataclasses.replace(event, how=how)
                return

    def _named_lambda(self, node: ast.Lambda, names: list[str]) -> None:
        """`f = lambda v: v * k` is a function as much as `def f(v)`: its body reads `k`
        when it is called, wherever that is, so the name carries what it needs."""
        for expr in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(expr)
        needs = frozenset(function_free_names(node))
        for name in names:
            self.facts.needs[name] = needs
            self._event(Kind.BIND, name, node, "def")

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is None:
            return
        self.visit(node.value)
        self.visit(node.annotation)
        self._target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._event(Kind.READ, node.target.id, node.target)
            self._event(Kind.MUTATE, node.target.id, node.target)
        else:
            self._target(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                self._target(target)
            else:
                self.visit(target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        for name in sorted(_shell_reads(node)):
            self._event(Kind.SHELL_READ, name, node)
        unsupported = _unsupported_magic(node)
        if unsupported:
            self._event(Kind.MAGIC, unsupported, node)
        for name in _ipython_binds(node):
            self._event(Kind.BIND, name, node)
        if isinstance(node.func, ast.Name) and (
            node.func.id in DYNAMIC_CALLS or (node.func.id == "vars" and not node.args)
        ):
            self._event(Kind.DYNAMIC, node.func.id, node)
        for mutated in _mutates(node):
            self._event(Kind.MUTATE, mutated, node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self._event(Kind.STAR_IMPORT, getattr(node, "module", None) or "", node)
            else:
                self._event(Kind.BIND, alias.asname or alias.name.split(".")[0], node, "import")

    visit_ImportFrom = visit_Import

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in _evaluated_at_definition(node):
            self.visit(expr)
        self.facts.needs[node.name] = frozenset(function_free_names(node))
        assigned = _declared_globals_assigned(node)
        self.facts.binds[node.name] = frozenset(assigned)
        self._event(Kind.BIND, node.name, node, "def")
        # Defining it binds them only if something calls it; kfg cannot always see the call
        # (another function may make it), so the definition counts too, and so does each
        # module-level use of the name (kfg.analysis.dataflow).
        for name in sorted(assigned):
            self._event(Kind.BIND, name, node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(expr)
        self._reads(function_free_names(node), node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
            self.visit(expr)
        body, methods = class_free_names(node)
        self._reads(body, node)
        self.facts.needs[node.name] = frozenset(methods)
        self._event(Kind.BIND, node.name, node, "class")

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        self.visit(node.generators[0].iter)
        free, walrus = comprehension_free_names(node)
        self._reads(free, node)
        for name in sorted(walrus):
            self._event(Kind.BIND, name, node)

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._event(Kind.BIND, node.name, node)
        for statement in node.body:
            self.visit(statement)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._event(Kind.BIND, node.name, node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._event(Kind.BIND, node.name, node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._event(Kind.BIND, node.rest, node)


def _declared_globals_assigned(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function declares `global` and assigns; defining it may (when called) bind them."""
    declared = {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}
    if not declared:
        return set()
    stored = {
        child.id
        for child in ast.walk(node)
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store)
    }
    return declared & stored


def code_facts(tree: ast.Module) -> CodeFacts:
    """The events of a parsed cell; line numbers are the cell's own."""
    visitor = _ModuleFacts()
    for statement in tree.body:
        visitor.visit(statement)
    return visitor.facts

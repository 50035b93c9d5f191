"""Turn notebook cell source into plain Python that `ast` can parse, line for line.

Notebook cells contain IPython syntax (`%matplotlib inline`, `!pip install x`, `%%bash`,
`files = !ls`, `df?`). For analysis these lines are neutralised in place, keeping every line
number, so an error in cell 12 line 3 is still reported as cell 12 line 3.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass


def to_python(source: str) -> str:
    """The cell as the step runtime runs it: IPython syntax as calls on `get_ipython()`.

    The analysis reads exactly what a step executes, because both use the runtime's own
    translation (`kfg.runtime.step.transform`) and its one table of magics; it is imported
    only for cells that need it (about 40 ms, which plain Python cells never pay).
    """
    from kfg.runtime.step import transform

    return transform(source)


def is_ipython_call(statement: ast.stmt) -> bool:
    """Whether `statement` is a translated magic, shell line or `x?` (no Python effect)."""
    if isinstance(statement, ast.Pass):
        return True
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return False
    function = statement.value.func
    while isinstance(function, ast.Attribute):
        function = function.value
    if isinstance(function, ast.Call):
        function = function.func
    return isinstance(function, ast.Name) and function.id == "get_ipython"


@dataclass(frozen=True)
class SyntaxProblem:
    line: int
    message: str


def parse_cell(source: str) -> ast.Module | SyntaxProblem:
    """The cell's syntax tree as the step runtime will run it, or where it fails to parse."""
    try:
        try:
            tree = ast.parse(source)  # plain Python, the common case: parsed once
        except SyntaxError:
            tree = ast.parse(to_python(source))
        # What parses may still not compile: `return` or `yield` outside a function,
        # `nonlocal` at the top. The runtime compiles as this does (top-level await allowed).
        compile(tree, "<cell>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        return tree
    except SyntaxError as exc:
        return SyntaxProblem(exc.lineno or 1, exc.msg)
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxProblem(1, f"cannot be parsed ({type(exc).__name__})")


def _target_names(target: ast.expr) -> Iterable[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _function_globals(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function declares `global` and assigns: calling it defines them."""
    declared = {n for s in ast.walk(node) if isinstance(s, ast.Global) for n in s.names}
    if not declared:
        return set()
    assigned = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            assigned.add(child.id)
    return declared & assigned


def bound_names(tree: ast.Module) -> set[str]:
    """Names that running the module binds at module scope.

    Function and class bodies are their own scopes (except for `global`), comprehension
    variables stay inside the comprehension, and the walrus operator binds in the enclosing
    scope even inside a comprehension.
    """
    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            names |= _function_globals(node)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not (isinstance(node, ast.AnnAssign) and node.value is None):
                for target in targets:
                    names.update(_target_names(target))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_target_names(node.target))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    names.update(_target_names(item.optional_vars))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.NamedExpr):
            names.update(_target_names(node.target))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return names

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfg.pysource.source import (
    SyntaxProblem,
    bound_names,
    is_ipython_call,
    parse_cell,
    to_python,
)


def names(code: str) -> set[str]:
    tree = parse_cell(code)
    assert isinstance(tree, ast.Module)
    return bound_names(tree)


def test_ipython_lines_keep_line_numbers() -> None:
    source = "%matplotlib inline\nx = 1\n!pip install a\nfiles = !ls\ndf?\n  \ny = 2"
    out = to_python(source)
    assert len(out.splitlines()) == len(source.splitlines())
    assert ast.parse(out)
    assert names(source) == {"x", "files", "y"}


@pytest.mark.parametrize("magic", ["%%bash\necho hi\nif then", "%%writefile x.txt\nnot python ("])
def test_non_python_cell_magics_become_one_call_binding_nothing(magic: str) -> None:
    tree = parse_cell(magic)
    assert isinstance(tree, ast.Module) and len(tree.body) == 1
    assert is_ipython_call(tree.body[0]) and bound_names(tree) == set()


@pytest.mark.parametrize("magic", ["time", "timeit", "capture", "prun", "debug"])
def test_python_cell_magics_keep_their_body(magic: str) -> None:
    assert names(f"%%{magic}\nx = 1") == {"x"}


@pytest.mark.parametrize(
    "source",
    ["%%debug\nx = 1", "%%bash\necho hi", "%time y = 2", "a = !ls\n%pip install b", "plain = 1"],
)
def test_the_analysis_reads_exactly_what_the_step_runtime_runs(source: str) -> None:
    # One table of magics: the analysis parses the runtime's own translation of the cell.
    from kfg.runtime.step import transform

    assert to_python(source) == transform(source)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("a = 1\nb, (c, *d) = 1, (2, 3)", {"a", "b", "c", "d"}),
        ("a += 1", {"a"}),
        ("a: int", set()),
        ("a: int = 1", {"a"}),
        ("import os.path\nimport numpy as np\nfrom x import y as z, w", {"os", "np", "z", "w"}),
        ("from x import *", set()),
        ("def f():\n    inner = 1\nclass C:\n    attr = 1", {"f", "C"}),
        ("def f():\n    global g\n    g = 1", {"f", "g"}),
        ("[i for i in range(3)]", set()),
        ("[(j := i) for i in range(3)]", {"j"}),
        ("for i in x:\n    k = i\nwith open(p) as fh:\n    pass", {"i", "k", "fh"}),
        ("try:\n    pass\nexcept E as err:\n    pass", {"err"}),
        ("if c:\n    a = 1\nelse:\n    b = 2", {"a", "b"}),
        ("f = lambda q: q", {"f"}),
        ("df.x = 1\nd['k'] = 2", set()),
        (
            "match v:\n    case [a, *rest]:\n        pass\n    case {'k': b, **others}:\n        pass",
            {"a", "rest", "b", "others"},
        ),
    ],
)
def test_bound_names(code: str, expected: set[str]) -> None:
    assert names(code) == expected


def test_syntax_errors_are_reported_with_their_line() -> None:
    problem = parse_cell("x = 1\ny = (")
    assert not isinstance(problem, ast.Module)
    assert problem.line == 2


@given(st.text(max_size=200))
def test_parse_cell_never_raises(source: str) -> None:
    parse_cell(source)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("return 1", "'return' outside function"),
        ("x = 1\nyield x", "'yield' outside function"),
        ("nonlocal x", "nonlocal declaration not allowed at module level"),
    ],
)
def test_what_parses_but_cannot_compile_is_a_syntax_problem(code: str, message: str) -> None:
    problem = parse_cell(code)
    assert isinstance(problem, SyntaxProblem), problem
    assert problem.message == message


def test_top_level_await_compiles_as_jupyter_runs_it() -> None:
    assert isinstance(parse_cell("import asyncio\nawait asyncio.sleep(0)"), ast.Module)

from __future__ import annotations

import pytest

from kfg.pysource.parameters import parse_parameters


def test_literal_assignments() -> None:
    params, problems = parse_parameters(
        "# comment\nlr = 1e-3\nlayers: list = [64, 32]\nname = 'x'\nflag = True\nneg = -2\nopts = {'a': (1, 2)}\n"
    )
    assert problems == []
    assert {p.name: (p.default, p.type_name) for p in params} == {
        "lr": (0.001, "float"),
        "layers": ([64, 32], "list"),
        "name": ("x", "str"),
        "flag": (True, "bool"),
        "neg": (-2, "int"),
        "opts": ({"a": [1, 2]}, "dict"),
    }


@pytest.mark.parametrize(
    ("code", "line", "fragment"),
    [
        ("a = 1\nb = f(a)", 2, "not assigned a literal"),
        ("a = None", 1, "has no type"),
        ("a, b = 1, 2", 1, "assign one name per line"),
        ("print(1)", 1, "is not an assignment"),
        ("a = 1\na = 2", 2, "assigned twice"),
        ("a = b'x'", 1, "parameters are str, int, float, bool, list or dict"),
        ("a = (", 1, "invalid syntax"),
    ],
)
def test_problems(code: str, line: int, fragment: str) -> None:
    _, problems = parse_parameters(code)
    assert any(p.line == line and fragment in p.message for p in problems), problems

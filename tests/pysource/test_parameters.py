from __future__ import annotations

import pytest

from kfg.pysource.parameters import parse_parameters


def test_literal_assignments() -> None:
    params, problems = parse_parameters(
        "# comment\nlr = 1e-3\nlayers: list = [64, 32]\nname = 'x'\nflag = True\nneg = -2\nopts = {'a': (1, 2)}\n"
    )
    assert [(p.line, p.warning) for p in problems] == [(7, True)]  # the tuple becomes a list
    assert "steps receive it as a list" in problems[0].message
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
        # what KFP refuses or cannot carry exactly (kfp 2.17.0 dsl/pipeline_channel.py)
        ("_ = 1", 1, "not a name Kubeflow Pipelines accepts"),
        ("__x = 1", 1, "not a name Kubeflow Pipelines accepts"),
        ("π = 3.14", 1, "not a name Kubeflow Pipelines accepts"),
        ("d = {'a': [1, {'b': None}]}", 1, "holds None at ['a'][1]['b']"),
        ("n = 10**20", 1, "not assigned a literal"),
        ("n = 100000000000000000000", 1, "beyond ±(2**53 - 1)"),
        ("l = [1.0, float('nan')]", 1, "not assigned a literal"),
        ("d = {1: 'a'}", 1, "has the key 1"),
        ("s = {1, 2}", 1, "holds a set"),
    ],
)
def test_problems(code: str, line: int, fragment: str) -> None:
    _, problems = parse_parameters(code)
    assert any(p.line == line and fragment in p.message for p in problems), problems


def test_a_problem_is_an_error_unless_it_says_it_is_a_warning() -> None:
    _, problems = parse_parameters("a = None\nb = (1, 2)\n")
    assert [(p.line, p.warning) for p in problems] == [(1, False), (2, True)]

from __future__ import annotations

import ast
import symtable
import textwrap

import pytest

from kfg.pysource.scopes import Kind, code_facts, function_free_names


def events(source: str) -> list[tuple[str, str]]:
    facts = code_facts(ast.parse(textwrap.dedent(source)))
    return [(e.kind.value, e.name) for e in facts.events]


FUNCTIONS = [
    "def f(a, *b, c=1, **d):\n    return a + b + c + d + g",
    "def f():\n    x = 1\n    def h():\n        return x + y\n    return h",
    "def f():\n    return [i * k for i in range(n) if i > m]",
    "def f():\n    global counter\n    counter += step\n",
    "def f():\n    try:\n        pass\n    except ValueError as e:\n        return e, z\n",
    "def f():\n    import os\n    from sys import path as p\n    return os, p, q\n",
    "def f():\n    class C:\n        attr = w\n        def m(self):\n            return attr\n    return C\n",
    "def f():\n    return lambda v, u=default: v + u + outer\n",
    "def f():\n    if (n := size) > 0:\n        return n\n    return [y := t for t in items], y\n",
    "def f():\n    for a, (b, *c) in pairs:\n        print(a, b, c)\n    with open(p) as fh:\n        fh\n",
    "def f():\n    match cmd:\n        case [x, *rest]:\n            return x, rest\n        case {'k': v, **others}:\n            return v, others\n        case Point(x=px) as pt:\n            return px, pt\n",
    "def f():\n    nonlocal_free = 1\n    def g():\n        nonlocal nonlocal_free\n        nonlocal_free = glob\n    return g\n",
]


def _symtable_globals(source: str) -> set[str]:
    """Every global name the function's scopes read, according to CPython's symtable."""
    table = symtable.symtable(source, "<f>", "exec").get_children()[0]
    names: set[str] = set()
    stack = [table]
    while stack:
        scope = stack.pop()
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                names.add(symbol.get_name())
        stack.extend(scope.get_children())
    return names


@pytest.mark.parametrize("source", FUNCTIONS)
def test_free_names_agree_with_cpython_symtable(source: str) -> None:
    tree = ast.parse(source)
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    expected = _symtable_globals(source)
    assert function_free_names(function) == expected


def test_module_events_follow_evaluation_order() -> None:
    assert events("x = x + 1") == [("read", "x"), ("bind", "x")]
    assert events("for i in items:\n    total += i") == [
        ("read", "items"),
        ("bind", "i"),
        ("read", "i"),
        ("read", "total"),
        ("mutate", "total"),
    ]


def test_in_place_mutation_is_recorded_on_the_base_name() -> None:
    assert ("mutate", "df") in events("df['a'] = 1")
    assert ("mutate", "df") in events("df.loc[0, 'a'] = 1")
    assert ("mutate", "df") in events("df.drop(columns=['a'], inplace=True)")
    assert ("mutate", "lst") in events("lst.append(3)")
    assert ("mutate", "model") in events("model.fit(X, y)")
    assert ("mutate", "obj") in events("obj.attr = 2")
    assert ("mutate", "d") in events("del d['k']")
    # Reading methods do not make a step the producer of an object.
    assert not [e for e in events("df.head()") if e[0] == "mutate"]
    assert not [e for e in events("df.drop(columns=['a'])") if e[0] == "mutate"]


def test_comprehension_variables_stay_inside() -> None:
    assert events("squares = [i * i for i in numbers if i > limit]") == [
        ("read", "numbers"),
        ("read", "limit"),
        ("bind", "squares"),
    ]
    assert ("bind", "last") in events("[last := v for v in values]")


def test_function_definitions_record_what_their_body_will_read() -> None:
    facts = code_facts(ast.parse("def score(m):\n    return m.score(X_test, y_test)\n"))
    assert facts.needs["score"] == {"X_test", "y_test"}
    assert [e.how for e in facts.events if e.kind is Kind.BIND] == ["def"]


def test_class_bodies_read_at_definition_and_methods_when_called() -> None:
    facts = code_facts(
        ast.parse(
            "class Model(Base):\n    size = width\n    def run(self):\n        return scale\n"
        )
    )
    reads = [e.name for e in facts.events if e.kind is Kind.READ]
    assert reads == ["Base", "width"]
    assert facts.needs["Model"] == {"scale"}


def test_global_declaration_binds_at_module_scope() -> None:
    assert ("bind", "counter") in events("def bump():\n    global counter\n    counter = 1\n")


def test_star_import_is_an_event() -> None:
    assert events("from math import *") == [("star-import", "math")]

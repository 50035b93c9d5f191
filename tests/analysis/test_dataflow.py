from __future__ import annotations

from pathlib import Path

from kfg.analysis.dataflow import Flow
from tests.pipelines import make, messages


def flow_of(
    tmp_path: Path, cells: list[tuple[str, str]], steps: list[dict[str, object]], **spec: object
) -> Flow:
    result = make(tmp_path, cells, steps, **spec)
    assert result.ok, messages(result)
    assert result.flow is not None
    return result.flow


def step(name: str, *cells: int, **extra: object) -> dict[str, object]:
    return {"name": name, "cells": list(cells), **extra}


def test_variables_flow_from_the_latest_producer(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [("code", "a = 1"), ("code", "b = a + 1"), ("code", "a = 10"), ("code", "c = a + b")],
        [step("one", 1), step("two", 2), step("three", 3), step("four", 4)],
    )
    assert flow.step("four").inputs == {"a": "three", "b": "two"}
    assert flow.step("one").outputs == ("a",)
    assert flow.step("three").outputs == ("a",)
    assert [(e.source, e.target, e.variables) for e in flow.edges] == [
        ("one", "two", ("a",)),
        ("two", "four", ("b",)),
        ("three", "four", ("a",)),
    ]


def test_each_step_receives_only_the_parameters_it_reads(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "n_estimators = 100\nseed = 1"),
            ("code", "data = list(range(seed, 10))"),
            ("code", "model = sum(data) * n_estimators"),
        ],
        [step("load", 2), step("train", 3)],
        parameters={"cell": 1},
    )
    assert flow.step("load").parameters == ("seed",)
    assert flow.step("train").parameters == ("n_estimators",)


def test_functions_defined_upstream_bring_their_free_variables(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "scale = 3"),
            ("code", "def apply(x):\n    return x * scale"),
            ("code", "y = apply(2)"),
        ],
        [step("config", 1), step("define", 2), step("use", 3)],
    )
    assert flow.step("use").inputs == {"apply": "define", "scale": "config"}
    assert flow.step("define").code_outputs == ("apply",)


def test_prelude_helpers_pull_in_the_globals_they_read(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "def evaluate(model):\n    return model + X_test"),
            ("code", "X_test = 5"),
            ("code", "score = evaluate(1)"),
        ],
        [step("split", 2), step("score", 3)],
        prelude=[1],
    )
    assert flow.step("score").inputs == {"X_test": "split"}


def test_classes_and_imports_travel_downstream(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "import json as j\nclass Box:\n    def get(self):\n        return size"),
            ("code", "size = 2"),
            ("code", "out = j.dumps(Box().get())"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"Box": "a", "j": "a", "size": "b"}
    assert flow.step("a").code_outputs == ("Box",)


def test_in_place_mutation_makes_a_step_the_new_producer(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "items = [1]\ntable = {'a': 1}"),
            ("code", "items.append(2)"),
            ("code", "table['b'] = 2"),
            ("code", "n = 0"),
            ("code", "n += 1"),
            ("code", "result = (items, table, n)"),
        ],
        [step(f"s{i}", i) for i in range(1, 7)],
    )
    assert flow.step("s6").inputs == {"items": "s2", "n": "s5", "table": "s3"}
    assert flow.step("s2").inputs == {"items": "s1"}


def test_reading_after_del_is_an_error(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "tmp = 1"), ("code", "del tmp"), ("code", "x = tmp")],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert not result.ok
    assert any(
        "step `c`: cell 3, line 1: `tmp` is read, but step `b` deleted it" in m
        for m in messages(result)
    )


def test_undefined_names_are_errors_naming_step_cell_and_line(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "a = 1"), ("code", "b = a\nc = typo + 1")],
        [step("first", 1), step("second", 2)],
    )
    assert not result.ok
    [diagnostic] = [d for d in result.diagnostics if d.code == "undefined-name"]
    assert (
        diagnostic.message
        == "step `second`: cell 2, line 2: `typo` is read before any step defines it"
    )
    assert diagnostic.field == "spec.steps[1].cells"


def test_a_name_defined_later_is_not_available_earlier(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "x = y"), ("code", "y = 1")],
        [step("first", 1), step("second", 2)],
    )
    assert "`y` is read before any step defines it" in " ".join(messages(result))


def test_star_imports_warn_and_silence_undefined_names(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "from math import *"), ("code", "x = sqrt(2)")],
        [step("only", 2)],
        prelude=[1],
    )
    assert result.ok
    assert any(
        "warning: prelude cell 1, line 1: `from math import *`" in m for m in messages(result)
    )


def test_a_lambda_bound_to_a_name_brings_its_free_variables_as_a_function_does(
    tmp_path: Path,
) -> None:
    """`f = lambda v: v * k` reads `k` when it is called, in the step calling it."""
    flow = flow_of(
        tmp_path,
        [
            ("code", "k = 3"),
            ("code", "f = lambda v, d=k: v * k + d"),
            ("code", "r = f(2)"),
        ],
        [step("config", 1), step("define", 2), step("use", 3)],
    )
    assert flow.step("use").inputs == {"f": "define", "k": "config"}
    assert flow.step("define").code_outputs == ("f",)
    assert flow.step("define").inputs == {"k": "config"}  # the default is read at once


def test_globals_a_function_assigns_come_from_the_step_that_calls_it(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "def setup():\n    global g\n    g = 5"),
            ("code", "setup()"),
            ("code", "h = g + 1"),
        ],
        [step("define", 1), step("call", 2), step("use", 3)],
    )
    assert flow.step("use").inputs == {"g": "call"}
    assert flow.step("define").outputs == ("setup",)


def test_globals_assigned_through_other_functions_come_from_the_calling_step(
    tmp_path: Path,
) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "def setup():\n    global g\n    g = 5\ninit = lambda: setup()"),
            ("code", "def main():\n    init()"),
            ("code", "main()"),
            ("code", "h = g + 1"),
        ],
        [step("define", 1), step("wrap", 2), step("call", 3), step("use", 4)],
    )
    assert flow.step("use").inputs == {"g": "call"}


def test_timed_statements_and_walrus_in_comprehensions_bind_names(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "x = 2"),
            ("code", "%time y = x * 2\nys = [w for i in range(3) if (w := i)]"),
            ("code", "z = y + w"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"w": "b", "y": "b"}
    assert flow.step("b").inputs == {"x": "a"}


def test_variables_a_shell_line_expands_are_read_and_shell_variables_are_not(
    tmp_path: Path,
) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "out_dir = '/tmp/o'\nmsg = 'hi'\nn = 2"),
            (
                "code",
                "!mkdir -p {out_dir}\n!echo $msg $HOME > {out_dir}/m\nfiles = !ls {out_dir[:n]}",
            ),
        ],
        [step("setup", 1), step("use", 2)],
    )
    assert flow.step("use").inputs == {"msg": "setup", "n": "setup", "out_dir": "setup"}


def test_magic_lines_read_what_they_expand_and_shell_lines_bind_the_exit_code(
    tmp_path: Path,
) -> None:
    result = make(
        tmp_path,
        [
            ("code", "folder = 'sub'\nname = 'n.txt'\nv = 1"),
            ("code", "%cd {folder}\n%env KEY=$v"),
            ("code", "%%writefile {name}\ntext"),
            ("code", "!ls\nok = _exit_code == 0"),
        ],
        [step("setup", 1), step("cd", 2), step("write", 3), step("check", 4)],
    )
    assert result.ok, messages(result)
    assert not [m for m in messages(result) if "_exit_code" in m], messages(result)
    flow = result.flow
    assert flow is not None
    assert flow.step("cd").inputs == {"folder": "setup", "v": "setup"}
    assert flow.step("write").inputs == {"name": "setup"}
    assert flow.step("check").inputs == {}


def test_magics_a_step_cannot_run_are_refused_before_it_runs(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [
            ("code", "x = 1"),
            ("code", "%matplotlib inline\n%prun y = x + 1\n%lprun -f f f(1)"),
            ("code", "%%R\nprint(1)"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    found = [m for m in messages(result) if "does not run in a pipeline step" in m]
    assert len(found) == 2, messages(result)
    assert "cell 2, line 3: %lprun" in found[0] and "cell 3, line 1: %%R" in found[1]


def test_timing_magics_with_options_bind_what_their_statement_assigns(tmp_path: Path) -> None:
    """IPython's %timeit and %prun options (getopt strings "n:r:tcp:qo", "D:l:rs:T:q" in
    IPython's execution magics) come before the statement the step runs once."""
    flow = flow_of(
        tmp_path,
        [
            ("code", "def f(v):\n    return v * 2"),
            (
                "code",
                "%timeit -n1 -r 1 -q w = f(3)\nres = %time f(8)\n%prun -s cumulative p = f(1)",
            ),
            ("code", "print(w, res, p)"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"p": "b", "res": "b", "w": "b"}


def test_a_timing_result_is_refused_before_the_step_runs(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "def f():\n    return 1"), ("code", "r = %timeit -n 3 -o f()")],
        [step("a", 1), step("b", 2)],
    )
    found = [m for m in messages(result) if "does not run in a pipeline step" in m]
    assert len(found) == 1 and "cell 2, line 1: %timeit -o" in found[0], messages(result)


def test_a_module_the_step_writes_itself_needs_no_package(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [
            ("code", "%%writefile my_helpers.py\ndef twice(v):\n    return 2 * v"),
            ("code", "import my_helpers\ny = my_helpers.twice(2)"),
        ],
        [step("a", 1, 2)],
    )
    assert result.ok, messages(result)
    assert not [m for m in messages(result) if "my_helpers" in m]


def test_capture_and_bash_out_bind_their_variables(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "%%capture cap --no-stderr\nprint(1)"),
            ("code", "%%bash --out listing\nls"),
            ("code", "print(cap.stdout, listing)"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"cap": "a", "listing": "b"}


def test_changing_an_object_through_another_name_in_the_same_step_changes_both(
    tmp_path: Path,
) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "l = []"),
            ("code", "m = l\nm.append(1)"),
            ("code", "print(l)"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"l": "b"}  # b changed `l` through `m`


def test_one_object_under_two_names_across_steps_is_warned_about_when_read_later(
    tmp_path: Path,
) -> None:
    cells = [("code", "l = []\nm = l"), ("code", "m.append(1)"), ("code", "print(l)")]
    result = make(tmp_path, cells, [step("a", 1), step("b", 2), step("c", 3)])
    warned = [m for m in messages(result) if "same object as `l`" in m]
    assert len(warned) == 1 and "`m = l.copy()`" in warned[0], messages(result)
    unread = make(
        tmp_path, [*cells[:2], ("code", "print(m)")], [step("a", 1), step("b", 2), step("c", 3)]
    )
    assert not [m for m in messages(unread) if "same object" in m]  # nobody reads `l` later


def test_a_module_imported_by_one_step_and_used_by_another_is_warned_about(
    tmp_path: Path,
) -> None:
    result = make(
        tmp_path,
        [
            ("code", "import string\nletters = string.ascii_lowercase"),
            ("code", "up = string.capwords('a b')"),
        ],
        [step("a", 1), step("b", 2)],
    )
    assert result.ok and result.flow is not None
    assert result.flow.step("b").inputs == {"string": "a"}  # it still works: passed by name
    warned = [m for m in messages(result) if "was imported by step `a`" in m]
    assert len(warned) == 1 and "import it in the prelude" in warned[0]


def test_a_generator_or_file_object_read_by_a_later_step_is_warned_about(
    tmp_path: Path,
) -> None:
    # The serializer cannot save them (the run would fail on the edge); values rebuilt from
    # them, or made and used in one step, are fine.
    result = make(
        tmp_path,
        [
            (
                "code",
                "g = (i for i in range(3))\nf = open('/etc/hostname')\n"
                "with open('/etc/hostname') as h:\n    text = h.read()\n"
                "lines = (n for n in [1])\nlines = list(lines)\nlocal = (i for i in [1])\n"
                "total = sum(local)",
            ),
            ("code", "print(next(g), f.read(), h.closed, text, lines, total)"),
        ],
        [step("a", 1), step("b", 2)],
    )
    assert result.ok and result.flow is not None
    warned = [m for m in messages(result) if "cannot be saved to pass it" in m]
    held = sorted(m.split(": ")[-1].split(" made in")[0] for m in warned)
    assert held == [
        "`f` holds a file object",
        "`g` holds a generator",
        "`h` holds a file object",
    ]
    assert all("make it in this step instead" in w for w in warned)


def test_comprehension_scopes_and_global_declarations(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "values = [1, 2]"),
            ("code", "def init():\n    global total\n    total = 0\ninit()"),
            ("code", "doubled = [v * 2 for v in values]\nt = total"),
        ],
        [step("a", 1), step("b", 2), step("c", 3)],
    )
    assert flow.step("c").inputs == {"total": "b", "values": "a"}


def test_after_adds_an_edge_without_data(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [("code", "a = 1"), ("code", "b = 2")],
        [step("first", 1), step("second", 2, after=["first"])],
    )
    assert [(e.source, e.target, e.variables) for e in flow.edges] == [("first", "second", ())]
    assert flow.step("second").upstream == ("first",)


def test_magics_do_not_break_the_analysis(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [("code", "%matplotlib inline\n!echo hi\nfiles = !ls\nx = 1"), ("code", "%%time\ny = x")],
        [step("a", 1), step("b", 2)],
    )
    assert flow.step("b").inputs == {"x": "a"}


def test_wine_example_graph(wine: Path) -> None:
    from kfg.core.load import load_pipeline

    flow = load_pipeline(wine).flow
    assert flow is not None
    assert flow.step("random-forest").parameters == ("max_depth", "n_estimators", "random_state")
    assert flow.step("features").parameters == ("random_state", "test_size")
    assert flow.step("results").upstream == (
        "logistic-regression",
        "random-forest",
        "svm",
        "naive-bayes",
        "decision-tree",
    )


def test_parameter_names_cannot_take_artifact_prefixes(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "in_rate = 1"), ("code", "y = in_rate")],
        [step("only", 2)],
        parameters={"cell": 1},
    )
    assert not result.ok
    assert "`in_rate` starts with in_/out_/kfg_" in " ".join(messages(result))


def test_parameters_the_prelude_reads_go_to_every_step(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "seed = 7\nrate = 0.1"),
            ("code", "import random\nrandom.seed(seed)"),
            ("code", "a = 1"),
            ("code", "b = rate"),
        ],
        [step("first", 3), step("second", 4)],
        parameters={"cell": 1},
        prelude=[2],
    )
    assert flow.step("first").parameters == ("seed",)
    assert flow.step("second").parameters == ("rate", "seed")


def test_exec_and_globals_are_warned_about(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "globals()['made'] = 1\nexec('other = 2')")],
        [step("only", 1)],
    )
    assert result.ok
    warnings = [m for m in messages(result) if "dynamic" in m or "by name" in m]
    assert len(warnings) == 2
    assert "step `only`: cell 1, line 1: `globals()` can read and define variables" in warnings[0]


def test_a_rebound_function_name_no_longer_needs_the_functions_globals(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        [
            ("code", "scale = 2"),
            ("code", "def f():\n    return scale"),
            ("code", "f = 5"),
            ("code", "y = f"),
        ],
        [step("a", 1), step("b", 2), step("c", 3), step("d", 4)],
    )
    assert flow.step("d").inputs == {"f": "c"}

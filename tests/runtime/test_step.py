from __future__ import annotations

import ast
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from kfg.runtime import step
from kfg.runtime.step import (
    Script,
    StepFailed,
    expand_shell,
    load_value,
    run_step,
    save_value,
    script_options,
    transform,
)


def run(tmp_path: Path, sources: list[str], **kwargs: Any) -> dict[str, float]:
    arguments: dict[str, Any] = {
        "pipeline": "p",
        "step": "s",
        "prelude": [],
        "cells": list(enumerate(sources, start=1)),
        "parameters": {},
        "inputs": {},
        "outputs": {},
        "metrics": {},
        "report": str(tmp_path / "report.html"),
    }
    arguments.update(kwargs)
    return run_step(**arguments)


def test_transform_keeps_every_line_and_translates_ipython_syntax() -> None:
    source = (
        "%pip install x==1\n!ls -l\nfiles = !ls\nx = %env HOME\n  %time y = 1\ndf?\nz = 1\n"
        "%timeit -n 3 f(1)"
    )
    out = transform(source)
    assert out.count("\n") == source.count("\n")
    assert out.splitlines() == [
        "get_ipython().run_line_magic('pip', 'install x==1')",
        "get_ipython().system('ls -l')",
        "files = get_ipython().getoutput('ls')",
        "x = get_ipython().run_line_magic('env', 'HOME')",
        "  y = 1",  # %time runs its statement in the namespace: it is the statement
        "pass",
        "z = 1",
        "f(1);",  # the options go; the statement runs once, showing no value
    ]
    assert transform("text = '%d items' % 3") == "text = '%d items' % 3"


def test_cell_magics_run_python_bodies_or_become_one_call() -> None:
    assert transform("%%time\nx = 1\ny = 2") == "\nx = 1\ny = 2"
    assert transform("%%debug\nx = 1") == "\nx = 1"  # as the analysis reads it
    # IPython stores the capture under the key `c.d`, which no code can name: nothing binds.
    assert transform("%%capture c.d\nx = 1") == "get_ipython().start_capture('c.d')\nx = 1"
    assert transform("%%bash\necho hi\necho there") == (
        "get_ipython().run_cell_magic('bash', '', 'echo hi\\necho there')\n\n"
    )


@given(st.text(alphabet=st.sampled_from(list("%!?ab=_ \n.'\"#()")), max_size=40))
def test_transform_never_changes_the_line_count(source: str) -> None:
    assert transform(source).count("\n") == source.count("\n")


def test_shell_and_magics_work_at_run_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        tmp_path,
        [
            "!echo from-shell\nlines = !printf 'a\\nb'\n%env KFG_T=1\nimport os\nv = os.environ['KFG_T']"
        ],
        outputs={"lines": str(tmp_path / "lines"), "v": str(tmp_path / "v")},
    )
    assert "from-shell" in capsys.readouterr().out
    assert load_value(str(tmp_path / "lines")) == ["a", "b"]
    assert load_value(str(tmp_path / "v")) == "1"


def test_top_level_await_runs_as_in_jupyter_on_one_loop_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IPython's autoawait lets a cell `await`; a queue made in one cell works in the next,
    so every cell of a step runs on the same event loop."""
    run(
        tmp_path,
        [
            "import asyncio\nqueue = asyncio.Queue()\nawait queue.put(41)",
            "got = await queue.get()\nawait asyncio.sleep(0, result=got + 1)",
        ],
        outputs={"got": str(tmp_path / "got")},
    )
    assert load_value(str(tmp_path / "got")) == 41
    assert "42" in capsys.readouterr().out  # the awaited last expression is displayed


SHELL_NAMESPACE = {
    "out_dir": "/data/out",
    "msg": "hi there",
    "n": 3,
    "cfg": types.SimpleNamespace(name="demo"),
    "parts": ["a", "b", "c"],
}


def ipython_var_expand(command: str, namespace: dict[str, Any]) -> str:
    """IPython's own expansion (InteractiveShell.var_expand with its DollarFormatter,
    ipython 9.18.1 as pinned), the oracle the step runtime must agree with."""
    from IPython.utils.text import DollarFormatter

    try:
        return DollarFormatter().vformat(command, args=[], kwargs=dict(namespace))
    except Exception:
        return command


@pytest.mark.parametrize(
    ("command", "expanded"),
    [
        ("mkdir -p {out_dir}", "mkdir -p /data/out"),
        ("echo $msg > {out_dir}/m.txt", "echo hi there > /data/out/m.txt"),
        ("echo $HOME", "echo $HOME"),  # no such variable: the shell's, line left as written
        ("echo {msg} $HOME", "echo {msg} $HOME"),  # one part fails: none expands (IPython)
        ("awk '{print $1}' f", "awk '{print $1}' f"),
        ("echo '$msg'", "echo '$msg'"),  # single quotes keep a $ for the shell
        ("echo $$msg", "echo $msg"),
        ("echo {{x}} {n * 2} {msg!r}", "echo {x} 6 'hi there'"),
        ("echo {parts[1:]}", "echo ['b', 'c']"),  # the whole field is Python: it slices
        ("echo {n:03d}", "echo {n:03d}"),  # ... so a format spec does not evaluate
        ("find . -exec rm {} + $msg", "find . -exec rm {} + $msg"),  # `{}` leaves the line
        ("echo $cfg.name", "echo demo"),
    ],
)
def test_shell_lines_expand_variables_as_ipython_does(command: str, expanded: str) -> None:
    """IPython's var_expand (DollarFormatter): `{expression}` and `$name` from the
    notebook's namespace, all or nothing."""
    assert expand_shell(command, SHELL_NAMESPACE) == expanded
    assert ipython_var_expand(command, SHELL_NAMESPACE) == expanded


@given(st.lists(st.sampled_from([*"{}$!:'[]1 ._rn", "msg", "parts", "cfg", "name"])).map("".join))
def test_shell_expansion_agrees_with_ipython(command: str) -> None:
    assert expand_shell(command, SHELL_NAMESPACE) == ipython_var_expand(command, SHELL_NAMESPACE)


def test_a_shell_line_in_a_step_uses_the_notebooks_variables(tmp_path: Path) -> None:
    target = tmp_path / "made"
    run(
        tmp_path,
        [
            f"where = {str(target)!r}\nword = 'hello'",
            "!mkdir -p {where}\n!echo $word > {where}/w.txt",
        ],
    )
    assert (target / "w.txt").read_text() == "hello\n"


def test_magic_lines_and_shell_lines_in_functions_expand_as_in_ipython(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython expands a magic's line (not %time, %timeit, %prun: `@no_var_expand`) and
    reads a function's locals for a shell line inside it (InteractiveShell.var_expand)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    run(
        tmp_path,
        [
            "folder = 'sub'\nname = 'notes.txt'\nvalue = 'v1'",
            "%cd {folder}\n%env KFG_TEST_VALUE=$value",
            "%%writefile {name}\nwritten",
            "def listing(pattern):\n    found = !ls {pattern}\n    return found",
            "files = listing('*.txt')\nlast = _exit_code",
        ],
        outputs={n: str(tmp_path / n) for n in ("files", "last")},
    )
    assert (tmp_path / "sub" / "notes.txt").read_text() == "written"
    assert os.environ.pop("KFG_TEST_VALUE") == "v1"
    assert load_value(str(tmp_path / "files")) == ["notes.txt"]
    assert load_value(str(tmp_path / "last")) == 0  # getoutput sets it too


def test_writefile_without_a_file_name_fails_the_step_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"%%writefile needs the name of the file to write"):
        run(tmp_path, ["%%writefile\ntext"])


def test_time_without_raising_reports_the_error_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        tmp_path,
        ["%time --no-raise-error 1 / 0\nafter = 1"],
        outputs={"after": str(tmp_path / "a")},
    )
    assert "ZeroDivisionError" in capsys.readouterr().err
    assert load_value(str(tmp_path / "a")) == 1


def test_capture_and_bash_out_bind_what_ipython_binds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`%%capture cap` keeps what its cell printed in `cap` (and prints nothing), until the
    cell ends; `%%bash --out o --err e` stores the script's output. Both travel onwards."""
    run(
        tmp_path,
        [
            '%%capture cap\nprint("quiet")\nprint("also quiet")',
            "print('after the capture')",
            "%%bash --out listing --err problems\necho hi\necho oops >&2",
        ],
        outputs={n: str(tmp_path / n) for n in ("cap", "listing", "problems")},
    )
    printed = capsys.readouterr().out
    assert "quiet" not in printed and "after the capture" in printed
    captured = load_value(str(tmp_path / "cap"))
    assert captured.stdout == "quiet\nalso quiet\n"
    assert load_value(str(tmp_path / "listing")) == "hi\n"
    assert load_value(str(tmp_path / "problems")) == "oops\n"


def test_a_failing_script_fails_the_step_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IPython's script magics raise CalledProcessError on a non-zero exit unless
    --no-raise-error (ipython/ipython, IPython/core/magics/script.py, `raise_error`)."""
    with pytest.raises(StepFailed, match=r"cell 1, line 1: CalledProcessError: .*bash.* 3"):
        run(tmp_path, ["%%bash\necho before\nexit 3"])
    assert "before" in capsys.readouterr().out
    run(
        tmp_path,
        ["%%script --no-raise-error sh --out so\necho kept\nexit 4"],
        outputs={"so": str(tmp_path / "so")},
    )
    assert load_value(str(tmp_path / "so")) == "kept\n"  # options after the program too


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("bash", "", Script(["bash"])),
        ("bash", "--out=o --err e", Script(["bash"], "o", "e")),
        ("script", "--bg python3 -u", Script(["python3", "-u"])),
        ("script", "--proc p --no-raise-error 'my shell'", Script(["my shell"], raise_error=False)),
        ("sh", "--out c.d", Script(["sh"])),  # not a variable name: output is printed
    ],
)
def test_script_options_read_as_ipython_reads_them(name: str, line: str, expected: Script) -> None:
    assert script_options(name, line) == expected


def test_timeit_shows_no_value_and_time_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(tmp_path, ["%timeit 'quiet' + '-value'"])
    run(tmp_path, ["%time 'shown' + '-value'"])
    printed = capsys.readouterr().out
    assert "quiet-value" not in printed and "shown-value" in printed


def test_timeit_options_are_dropped_and_its_statement_runs(tmp_path: Path) -> None:
    run(
        tmp_path,
        ["calls = []\n%timeit -n 3 -r1 -q calls.append(1)\nt = %time len(calls)"],
        outputs={"t": str(tmp_path / "t")},
    )
    assert load_value(str(tmp_path / "t")) == 1


@pytest.mark.parametrize(
    ("line", "python"),
    [
        ("res = %time f(8)", "res = f(8)"),  # %time returns its expression's value
        ("%timeit -n1 -r1 -q w = f(3)", "w = f(3);"),
        ("%timeit -qn 5 -- -x", "-x;"),  # flags share a word; `--` ends the options
        ("%timeit -o f()", "f();"),
        ("  t = %timeit -r 2 f()", "  f(); t = None"),  # %timeit returns nothing
        ("x = %prun -s cumulative -l 5 y = g()", "y = g(); x = None"),
        ("%time -x", "-x"),  # %time has no options
        ("%timeit\t-n1  f()  # note", "f();"),  # the comment goes, or it would hide `;`
        ("x = %timeit f()  # note", "f(); x = None"),
        (
            "x = %prun for i in r: f(i)",
            "x = get_ipython().run_line_magic('prun', 'for i in r: f(i)')",
        ),
        ("x = !time ls", "x = get_ipython().getoutput('time ls')"),
        ("r = %timeit -o f()", "r = get_ipython().run_line_magic('timeit', '-o f()')"),
    ],
)
def test_timing_magics_become_the_statement_they_time(line: str, python: str) -> None:
    assert transform(line) == python


def test_a_timing_result_fails_the_step(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"line 3: RuntimeError: %timeit -o returns a timing"):
        run(tmp_path, ["def f():\n    return 1\nr = %timeit -o f()"])


def test_unsupported_magic_fails_with_cell_and_line(tmp_path: Path) -> None:
    with pytest.raises(
        StepFailed,
        match=r"step `s` failed in cell 1, line 2: RuntimeError: %store is not supported",
    ):
        run(tmp_path, ["x = 1\n%store x"])


def test_failure_names_cell_position_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StepFailed) as failure:
        run(tmp_path, ["a = 1", "b = 2\nc = a / 0"], cells=[(7, "a = 1"), (9, "b = 2\nc = a / 0")])
    assert (
        str(failure.value)
        == "step `s` failed in cell 9, line 2: ZeroDivisionError: division by zero"
    )
    assert 'File "<cell 9>", line 2' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), None),
        (pd.Series([1.5, 2.5], name="s"), "pandas-pickle"),
        (np.arange(6).reshape(2, 3), "npy"),
        ({"k": [1, 2.5, "z"]}, "cloudpickle"),
        (json, "module"),
    ],
)
def test_values_round_trip_in_a_type_aware_format(
    tmp_path: Path, value: Any, fmt: str | None
) -> None:
    used = save_value("v", value, str(tmp_path / "v"))
    if fmt is not None:
        assert used == fmt
    else:
        assert used in ("parquet", "pandas-pickle")
    loaded = load_value(str(tmp_path / "v"))
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(loaded, value)
    elif isinstance(value, np.ndarray):
        assert np.array_equal(loaded, value)
    else:
        assert loaded == value


def test_scikit_learn_models_use_joblib(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    assert save_value("m", model, str(tmp_path / "m")) == "joblib"
    assert load_value(str(tmp_path / "m")).predict([[1.0]])[0] == 1


def test_notebook_functions_travel_and_read_the_consuming_steps_globals(tmp_path: Path) -> None:
    run(
        tmp_path,
        ["factor = 2\ndef scale(x):\n    return x * factor"],
        outputs={"scale": str(tmp_path / "f")},
    )
    assert (tmp_path / "f").read_bytes()[:2] == b"\x80\x05"  # cloudpickle's own file
    run(
        tmp_path,
        ["factor = 10\ny = scale(3)"],
        inputs={"scale": str(tmp_path / "f")},
        outputs={"y": str(tmp_path / "y")},
    )
    assert load_value(str(tmp_path / "y")) == 30  # as in the notebook: the global at call time


def test_unserialisable_value_names_variable_and_type(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"`gen` \(a builtins.generator\) cannot be passed"):
        run(tmp_path, ["gen = (i for i in range(3))"], outputs={"gen": str(tmp_path / "g")})


def test_a_value_pickling_refuses_names_both_steps_and_what_to_do(tmp_path: Path) -> None:
    # As xgboost.DMatrix does: its __reduce__ raises (a ctypes handle cannot be pickled).
    cell = (
        "class DMatrix:\n"
        "    def __reduce__(self):\n"
        "        raise TypeError('ctypes objects containing pointers cannot be pickled')\n"
        "dtrain = DMatrix()"
    )
    with pytest.raises(StepFailed) as failed:
        run(
            tmp_path,
            [cell],
            step="prepare",
            outputs={"dtrain": str(tmp_path / "d")},
            consumers={"dtrain": ["train"]},
        )
    message = str(failed.value)
    assert "`dtrain` (a __main__.DMatrix) cannot be passed from step `prepare` to `train`" in (
        message
    )
    assert "TypeError: ctypes objects containing pointers cannot be pickled" in message
    assert "build `dtrain` in `train` instead" in message
    assert "\n" not in message


def test_missing_output_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="should pass `late` to later steps"):
        run(tmp_path, ["if False:\n    late = 1"], outputs={"late": str(tmp_path / "l")})


def test_metrics_are_logged_and_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logged: list[tuple[str, float]] = []
    values = run(
        tmp_path,
        ["import numpy as np\nacc = np.float64(0.75)\nn = 3"],
        metrics={"accuracy": "acc", "count": "n"},
        log_metric=lambda name, value: logged.append((name, value)),
    )
    assert values == {"accuracy": 0.75, "count": 3.0}
    assert logged == [("accuracy", 0.75), ("count", 3.0)]
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == [
        'kfg:metric {"name": "accuracy", "step": "s", "value": 0.75}',
        'kfg:metric {"name": "count", "step": "s", "value": 3.0}',
    ]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("v = 'high'", "builtins.str"),
        ("v = 0.8 > 0.5", "builtins.bool"),
        # NumPy's truth values too, which float() would have turned into 1.0
        ("import numpy as np\nv = np.float64(0.8) > 0.5", "numpy.bool"),
        ("import numpy as np\nv = np.array(True)", "numpy.ndarray"),
    ],
)
def test_non_numeric_metric_fails(tmp_path: Path, source: str, kind: str) -> None:
    with pytest.raises(
        StepFailed, match=rf"metric `m` reads `v`, which is a {re.escape(kind)}, not a number"
    ):
        run(tmp_path, [source], metrics={"m": "v"})


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("v = 10 ** 400", "builtins.int that is no float: OverflowError"),
        (
            "class Odd:\n    def __float__(self):\n        raise RuntimeError('no')\nv = Odd()",
            "__main__.Odd that is no float: RuntimeError: no",
        ),
    ],
)
def test_a_metric_whose_conversion_raises_fails_the_step_saying_why(
    tmp_path: Path, source: str, cause: str
) -> None:
    with pytest.raises(StepFailed, match=rf"metric `m` reads `v`, a {re.escape(cause)}"):
        run(tmp_path, [source], metrics={"m": "v"})


def test_report_shows_prints_rich_reprs_and_figures(tmp_path: Path) -> None:
    run(
        tmp_path,
        [
            "print('hello')\nimport pandas as pd\npd.DataFrame({'col': [1]})",
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nNone",
            "class Md:\n    def _repr_markdown_(self):\n        return '# title'\nMd()",
            "hidden = 1;",
        ],
    )
    report = (tmp_path / "report.html").read_text()
    assert "hello" in report
    assert "<table" in report and "col" in report
    assert "data:image/png;base64," in report
    assert "# title" in report


def test_the_report_keeps_the_first_printed_text_and_says_what_only_the_log_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A loop printing millions of lines once took minutes: every print copied all the text
    # printed before it. The pieces are joined once now, and the report holds a bounded part.
    monkeypatch.setattr(step, "REPORT_TEXT_MAX", 50)
    run(
        tmp_path,
        [
            "for i in range(20):\n    print(f'<{i:02}>')",
            "print('after')",
            "class Rich:\n    def _repr_html_(self):\n        return '<b>rich</b>'\nRich()",
        ],
    )
    report = (tmp_path / "report.html").read_text()
    kept = "".join(f"&lt;{i:02}&gt;\n" for i in range(10))  # 10 lines of 5 characters
    assert f'<pre class="stream">{kept}\n<span class="omitted">… 50 more characters' in report
    assert "… 6 more characters printed here are only in the step's log" in report  # 'after'
    assert "<b>rich</b>" in report  # rich results still show: printed text is bounded
    assert capfd.readouterr().out.count("\n") == 21  # the log has every line


def test_parameters_are_globals_and_prelude_runs_first(tmp_path: Path) -> None:
    run(
        tmp_path,
        ["z = helper(n)"],
        prelude=[(1, "def helper(v):\n    return v + 1")],
        parameters={"n": 4},
        outputs={"z": str(tmp_path / "z")},
    )
    assert load_value(str(tmp_path / "z")) == 5


def test_runtime_uses_only_the_standard_library() -> None:
    tree = ast.parse(Path(step.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_main_exits_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        step.main(
            pipeline="p",
            step="s",
            prelude=[],
            cells=[(3, "1/0")],
            parameters={},
            inputs={},
            outputs={},
            metrics={},
            report=None,
        )
    assert exited.value.code == 1
    assert capsys.readouterr().err.endswith(
        "kfg: step `s` failed in cell 3, line 1: ZeroDivisionError: division by zero\n"
    )

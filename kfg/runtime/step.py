"""Run one pipeline step: load inputs, execute notebook cells, save outputs, report metrics.

This module is the whole step runtime, shared by both orchestrators: every Kubeflow step
loads this file from the pipeline's runtime ConfigMap (or its component embeds it), so a
pod needs nothing from a package index beyond what the step declares, and the local
engine imports it. It therefore depends on
the standard library only; pandas, numpy, joblib, cloudpickle, matplotlib and the deep
learning libraries are used when the step's own code brought them in.

Cells run in one namespace named `__main__`, as in a kernel, with IPython's syntax
(`%pip`, `!ls`, `%%bash`, `x = !cmd`) translated to calls on a small shell object, the last
expression of a cell displayed, and figures, HTML and Markdown collected into an HTML
report. A failure names the notebook cell and the line in it.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import hashlib
import html
import importlib
import importlib.util
import io
import json
import linecache
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tokenize
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

# The description of a value in an earlier kfg's tar files; values are now files in their own
# format, which `load_value` recognises by their first bytes.
VALUE_META = "kfg-value.json"
# A metric the step reports, one line on stdout: `kfg:metric {"name": ..., "step": ...,
# "value": ...}`. The trial launcher finds a run's metrics in its pods' logs by this prefix
# (Kubeflow Pipelines 2.17 serves no API for them), so a cell printing `loss=0.3` or any
# other text can never pass for one.
METRIC_PREFIX = "kfg:metric "


def metric_line(step: str, name: str, value: float) -> str:
    """The log line reporting metric `name` of `step`, as `kfg.launcher.podlogs` reads it."""
    return METRIC_PREFIX + json.dumps({"name": name, "step": step, "value": value}, sort_keys=True)


class StepFailed(Exception):
    """The step cannot complete; the message says where and why, in the notebook's terms."""


# --- IPython syntax --------------------------------------------------------------------

# How each magic is treated: the one table, read by the step runtime and by kfg's analysis
# (kfg/pysource/source.py translates cells with `transform` below), so what `kfg validate`
# parses is what a step runs. Cell magics whose body is Python run that body (timing,
# capturing, profiling and debugging mean nothing in a pipeline); the others become one call.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
# Line magics that only configure an interactive notebook: nothing to do in a step.
CONFIGURING_MAGICS = frozenset(
    {"matplotlib", "config", "load_ext", "reload_ext", "autoreload", "aimport", "xmode"}
    | {"precision", "pylab", "who", "whos", "pdb", "colors", "autosave"}
)
# What `Shell` runs; `kfg validate` refuses any other magic in a step before it runs.
LINE_MAGICS = CONFIGURING_MAGICS | {"pip", "time", "timeit", "prun", "env", "cd", "pwd"}
CELL_MAGICS = (
    PYTHON_CELL_MAGICS
    | {"bash", "sh", "script", "writefile", "file"}
    | {
        "html",
        "markdown",
        "svg",
        "latex",
    }
)
_LINE = re.compile(r"^(?P<indent>\s*)(?P<kind>%{1,2}|!{1,2})(?P<rest>.*)$")
_ASSIGNED = re.compile(r"^(?P<head>\s*[A-Za-z_][\w.\[\], ]*?\s*=\s*)(?P<kind>%|!)(?P<rest>.*)$")
_HELP = re.compile(r"^\s*\?*[A-Za-z_][\w.]*\?{1,2}\s*$")
_TIMED = re.compile(r"^(?P<indent>\s*)%(?P<magic>time|timeit|prun)(?:\s+(?P<args>.*))?$")
# The options IPython's %timeit and %prun take (their parse_options strings "n:r:tcp:qo" and
# "D:l:rs:T:q"): (options taking a value, flags). %time takes none.
_TIMING_OPTIONS = {"timeit": ("nrp", "tcqo"), "prun": ("DlsT", "rq"), "time": ("", "")}
# Magics whose line IPython does not expand (`@no_var_expand`): it is Python code.
NOT_EXPANDED = frozenset({"time", "timeit", "prun", "debug"})
# Options whose result is a timing or profile object that a step cannot produce.
TIMING_RESULTS = {"timeit": "o", "prun": "r"}


def timed_statement(magic: str, args: str) -> tuple[str, set[str]]:
    """(statement, option letters) of `%timeit -n1 -r 3 -qo f(x)`, read as getopt reads
    IPython's options: flags may share a word, a value is attached or the next word, `--`
    ends them. The statement keeps its own spacing; it runs once, untimed."""
    valued, flags = _TIMING_OPTIONS.get(magic, ("", ""))
    rest, seen = args.strip(), set[str]()
    if magic == "time" and rest.split(" ", 1)[0] == "--no-raise-error":  # IPython 9
        return rest[len("--no-raise-error") :].lstrip(), {"no-raise-error"}
    while valued + flags and rest.startswith("-") and len(rest) > 1 and not rest[1].isspace():
        word, after = _first_word(rest)
        if word == "--":
            return after.lstrip(), seen
        letters = word[1:]
        for position, letter in enumerate(letters):
            if letter in flags:
                seen.add(letter)
            elif letter in valued:
                seen.add(letter)
                if position == len(letters) - 1:  # the value is the next word
                    after = _first_word(after)[1]
                break
            else:  # not an option: the statement starts here (`-x + 1`)
                return rest, seen
        rest = after.lstrip()
    return rest, seen


def _first_word(text: str) -> tuple[str, str]:
    """(first word, the rest), split at any whitespace."""
    words = text.split(maxsplit=1)
    return (words[0] if words else "", words[1] if len(words) > 1 else "")


def _timed_line(line: str) -> str | None:
    """`%time y = f(x)`, `r = %time f(x)` and `%timeit -n3 f(x)` as the statement they run
    (line for line), so that the statement binds its names for the analysis too; None when
    the line is not a timing magic of Python code or asks for the timing result."""
    assigned = _ASSIGNED.match(line)
    if assigned and assigned.group("kind") != "%":
        return None
    timed = _TIMED.match("%" + assigned.group("rest") if assigned else line)
    if timed is None:
        return None
    magic = timed.group("magic")
    code, options = timed_statement(magic, timed.group("args") or "")
    code = _without_comment(code)
    if not code or not _is_python(code) or "no-raise-error" in options:
        return None
    if assigned is None:
        # %timeit and %prun show no value, so their statement ends with `;`.
        return timed.group("indent") + code + (";" if magic != "time" else "")
    if TIMING_RESULTS.get(magic, "") in options:
        return None  # `r = %timeit -o f(x)`: left to the runtime, which refuses it
    head = assigned.group("head")
    if magic == "time" and _is_expression(code):
        return head + code  # %time returns the expression's value
    indent = head[: len(head) - len(head.lstrip())]
    statement = f"{code}; {head.strip()} None"  # %timeit and %prun return nothing
    # A compound statement (`x = %prun for i in r: f(i)`) would take the assignment into
    # its body: that line is left to the runtime.
    if not _is_python(statement):
        return None
    body = len(ast.parse(code).body)
    return indent + statement if len(ast.parse(statement).body) == body + 1 else None


def _without_comment(code: str) -> str:
    """`f(x)  # note` as `f(x)`, so that what kfg appends (`;`) is not commented out."""
    if "#" not in code:
        return code.rstrip()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                return code[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return code.rstrip()


def _is_expression(code: str) -> bool:
    try:
        ast.parse(code, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_python(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _call(kind: str, rest: str) -> str:
    if kind.startswith("!"):
        return f"get_ipython().system({rest.strip()!r})"
    name, _, line = rest.strip().partition(" ")
    return f"get_ipython().run_line_magic({name!r}, {line.strip()!r})"


def transform(source: str) -> str:
    """Python for a cell's source, IPython syntax replaced by shell calls, line for line."""
    try:
        ast.parse(source)
        return source  # plain Python: nothing to translate (and `%` inside strings stays)
    except SyntaxError:
        pass
    lines = source.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name, _, args = lines[first].lstrip()[2:].partition(" ")
        if name == "capture":
            # `%%capture out`: the body runs, its printed output kept in `out` (IPython's
            # CapturedIO); the runtime ends the capture when the cell ends.
            target = [w for w in args.split() if not w.startswith("-") and w.isidentifier()]
            start = f"get_ipython().start_capture({args.strip()!r})"
            lines[first] = f"{target[0]} = {start}" if target else start
        elif name in PYTHON_CELL_MAGICS:
            lines[first] = ""
        else:
            body = "\n".join(lines[first + 1 :])
            call = f"get_ipython().run_cell_magic({name!r}, {args.strip()!r}, {body!r})"
            return "\n".join([*lines[:first], call, *([""] * (len(lines) - first - 1))])
    out = []
    for line in lines:
        timed = _timed_line(line)
        if timed is not None:
            out.append(timed)
            continue
        assigned = _ASSIGNED.match(line)
        if assigned:
            kind, rest = assigned.group("kind"), assigned.group("rest")
            if kind == "!":
                out.append(f"{assigned.group('head')}get_ipython().getoutput({rest.strip()!r})")
            else:
                out.append(assigned.group("head") + _call(kind, rest))
            continue
        magic = _LINE.match(line)
        if magic and not magic.group("kind").startswith("%%"):
            out.append(magic.group("indent") + _call(magic.group("kind"), magic.group("rest")))
        elif _HELP.match(line):
            out.append(line[: len(line) - len(line.lstrip())] + "pass")
        else:
            out.append(line)
    return "\n".join(out)


# IPython's `$name` in a shell line (its DollarFormatter): a `$` then a name or dotted
# attribute outside single quotes; `$$name` is a literal `$name`.
_DOLLAR = re.compile(r"(.*?)\$(\$?[\w.]+)(?=([^']*'[^']*')*[^']*$)", re.S)


def shell_fields(command: str) -> list[tuple[str, str | None, str | None]]:
    """A shell or magic line cut as IPython expands it (its DollarFormatter): (literal
    text, Python expression or None, conversion), from `{expression}` and `$name`. The
    whole field is the expression, `:` included (`{x[1:]}` slices; `{x:>5}` fails to
    evaluate, as in IPython). Raises ValueError for unbalanced braces. Shared with kfg's
    analysis, which counts the expressions' names as reads."""
    import string

    pieces: list[tuple[str, str | None, str | None]] = []
    for literal, field, spec, conversion in string.Formatter().parse(command):
        done = 0
        text = ""
        for match in _DOLLAR.finditer(literal):
            before, name = match.group(1), match.group(2)
            if name.startswith("$"):
                text += before + name
            else:
                pieces.append((text + before, name, None))
                text = ""
            done = match.end()
        if field is not None and spec:
            field = f"{field}:{spec}"
        pieces.append((text + literal[done:], field, conversion))
    return pieces


def expand_shell(command: str, namespace: dict[str, Any]) -> str:
    """`!mkdir -p {out_dir}` and `!echo $msg` as IPython runs them: each expression
    evaluated in (a copy of) the notebook's namespace; a line any part of which fails to
    evaluate (`$HOME` when no variable is called HOME, `awk '{print $1}'`, `{}`) runs as
    written."""
    if "{" not in command and "}" not in command and "$" not in command:
        return command
    try:
        out = []
        for literal, expression, conversion in shell_fields(command):
            out.append(literal)
            if expression is not None:
                value = eval(expression, dict(namespace))
                if conversion == "r":
                    value = repr(value)
                elif conversion == "a":
                    value = ascii(value)
                elif conversion is not None:
                    value = str(value)
                out.append(format(value, ""))
        return "".join(out)
    except Exception:
        return command


def _caller_namespace(namespace: dict[str, Any]) -> dict[str, Any]:
    """The notebook's variables and, for a shell line inside a function, its locals: what
    IPython's var_expand reads (the frame that called get_ipython().system and the like)."""
    frame = sys._getframe(2)
    if frame.f_locals is namespace:
        return namespace
    return {**namespace, **frame.f_locals}


class Captured:
    """What `%%capture out` binds, as IPython's CapturedIO offers it: the text the cell
    printed, and `show()` to print it after all."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.outputs: list[Any] = []

    @property
    def stdout(self) -> str:
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        return self.err.getvalue()

    def show(self) -> None:
        sys.stdout.write(self.stdout)
        sys.stderr.write(self.stderr)

    __call__ = show

    def __reduce__(self) -> tuple[Any, ...]:  # passed to another step as what it holds
        return (_captured_text, (self.stdout, self.stderr))


def _captured_text(stdout: str, stderr: str) -> Captured:
    captured = Captured()
    captured.out.write(stdout)
    captured.err.write(stderr)
    return captured


class Script(NamedTuple):
    """`%%script [--out OUT] [--err ERR] [--no-raise-error] [--bg] [--proc P] program`, as
    IPython's script magics read their line (options anywhere, argparse's parse_known_args);
    `%%bash` is `%%script bash`."""

    program: list[str]
    out: str | None = None
    err: str | None = None
    raise_error: bool = True


def script_options(name: str, line: str) -> Script:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    program: list[str] = [] if name == "script" else [name]
    found: dict[str, str | None] = {"--out": None, "--err": None, "--proc": None}
    raise_error = True
    index = 0
    while index < len(words):
        word = words[index]
        option, equals, value = word.partition("=")
        if option in found and equals:
            found[option] = value
        elif word in found and index + 1 < len(words):
            found[word] = words[index + 1]
            index += 1
        elif word == "--no-raise-error":
            raise_error = False
        elif word != "--bg":  # a step waits for its scripts: nothing runs after it ends
            program.append(word)
        index += 1
    out, err = (v if v and v.isidentifier() else None for v in (found["--out"], found["--err"]))
    return Script(program, out, err, raise_error)


class Shell:
    """What `get_ipython()` offers a step: shell commands and the magics pipelines use."""

    IGNORED = CONFIGURING_MAGICS

    def __init__(self, namespace: dict[str, Any], display: Callable[..., None]) -> None:
        self.namespace = namespace
        self.display = display
        self.user_ns = namespace
        self._restore: tuple[Any, Any] | None = None  # the streams a %%capture replaced

    def system(self, command: str) -> None:
        self._system(expand_shell(command, _caller_namespace(self.namespace)))

    def _system(self, command: str) -> None:
        completed = subprocess.run(command, shell=True, capture_output=True, text=True)
        sys.stdout.write(completed.stdout)
        sys.stderr.write(completed.stderr)
        self.namespace["_exit_code"] = completed.returncode

    def getoutput(self, command: str) -> list[str]:
        command = expand_shell(command, _caller_namespace(self.namespace))
        completed = subprocess.run(command, shell=True, capture_output=True, text=True)
        self.namespace["_exit_code"] = completed.returncode
        return (completed.stdout + completed.stderr).splitlines()

    def run_line_magic(self, name: str, line: str) -> Any:
        if name in self.IGNORED:
            return None
        if name not in NOT_EXPANDED:  # `%cd {folder}`, `%env KEY=$value`
            line = expand_shell(line, _caller_namespace(self.namespace))
        if name == "pip":
            completed = subprocess.run([sys.executable, "-m", "pip", *shlex.split(line)])
            if completed.returncode:
                raise RuntimeError(f"%pip {line} failed with exit status {completed.returncode}")
            importlib.invalidate_caches()
            return None
        if name in ("time", "timeit", "prun"):  # the statement runs once, untimed by prun
            code, options = timed_statement(name, line)
            if TIMING_RESULTS.get(name, "-") in options:
                raise RuntimeError(
                    f"%{name} -{TIMING_RESULTS[name]} returns a timing result, which a step"
                    " does not measure; time the statement with time.perf_counter()"
                )
            start = time.perf_counter()
            try:
                value = self._run_python(code)
            except Exception:
                if "no-raise-error" not in options:
                    raise
                traceback.print_exc()  # `%time --no-raise-error` shows the error and goes on
                value = None
            print(f"Wall time: {time.perf_counter() - start:.3f} s")
            return value if name == "time" else None
        if name == "env":
            key, sep, value = line.replace("=", " ", 1).partition(" ")
            if not sep:
                return os.environ.get(key) if key else dict(os.environ)
            os.environ[key] = value.strip()
            return None
        if name == "cd":
            os.chdir(os.path.expanduser(line.strip() or "~"))
            return None
        if name == "pwd":
            return os.getcwd()
        raise RuntimeError(
            f"%{name} is not supported by kfg's step runtime; supported magics: %pip, %time,"
            " %timeit, %env, %cd, %pwd, !shell, and those that only configure the notebook"
            " (%matplotlib, %config, %load_ext, ...)"
        )

    def start_capture(self, options: str) -> Captured:
        """`%%capture [--no-stdout] [--no-stderr] [name]` until the cell ends (end_capture)."""
        self.end_capture()
        captured = Captured()
        words = options.split()
        self._restore = (sys.stdout, sys.stderr)
        if "--no-stdout" not in words:
            sys.stdout = captured.out
        if "--no-stderr" not in words:
            sys.stderr = captured.err
        return captured

    def end_capture(self) -> None:
        if self._restore is not None:
            sys.stdout, sys.stderr = self._restore
            self._restore = None

    def run_cell_magic(self, name: str, line: str, body: str) -> None:
        line = expand_shell(line, _caller_namespace(self.namespace))  # `%%writefile {path}`
        if name in ("bash", "sh", "script"):  # IPython expands no variables in the body
            script = script_options(name, line)
            if not script.program:
                raise RuntimeError("%%script needs the program to run, such as %%script python3")
            # The body goes to the program's standard input, as IPython sends it.
            completed = subprocess.run(script.program, input=body, capture_output=True, text=True)
            for variable, text, stream in (
                (script.out, completed.stdout, sys.stdout),
                (script.err, completed.stderr, sys.stderr),
            ):
                if variable is None:
                    stream.write(text)
                else:
                    self.namespace[variable] = text
            if completed.returncode and script.raise_error:
                # IPython raises too, unless --no-raise-error: a failing script fails the step.
                raise subprocess.CalledProcessError(completed.returncode, script.program)
        elif name in ("writefile", "file"):  # %%file is IPython's alias
            args = shlex.split(line)
            mode = "a" if "-a" in args or "--append" in args else "w"
            target = next((a for a in args if not a.startswith("-")), None)
            if target is None:
                raise RuntimeError(f"%%{name} needs the name of the file to write")
            with open(target, mode, encoding="utf-8") as handle:
                handle.write(body)
        elif name in ("html", "markdown", "svg", "latex"):
            mime = {"html": "text/html", "markdown": "text/markdown", "svg": "image/svg+xml"}
            self.display({mime.get(name, "text/plain"): body}, raw=True)
        else:
            raise RuntimeError(
                f"%%{name} is not supported by kfg's step runtime; supported cell magics:"
                " %%bash, %%sh, %%script, %%writefile, %%html, %%markdown, %%svg, %%time,"
                " %%timeit, %%capture"
            )

    def _run_python(self, source: str) -> Any:
        try:
            return eval(compile(source, "<magic>", "eval", dont_inherit=True), self.namespace)
        except SyntaxError:
            exec(compile(source, "<magic>", "exec", dont_inherit=True), self.namespace)
            return None


# --- rich output -----------------------------------------------------------------------


def mime_bundle(value: Any) -> dict[str, str]:
    """The richest representations of a value, as a notebook front end would pick them."""
    if hasattr(value, "savefig") and hasattr(value, "canvas"):  # a matplotlib Figure
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii")}
    bundle: dict[str, str] = {}
    for method, mime in (
        ("_repr_html_", "text/html"),
        ("_repr_markdown_", "text/markdown"),
        ("_repr_svg_", "image/svg+xml"),
        ("_repr_png_", "image/png"),
    ):
        render = getattr(value, method, None)
        if callable(render) and not isinstance(value, type):
            try:
                data = render()
            except Exception:  # a broken repr must not fail the step
                continue
            if isinstance(data, bytes):
                data = base64.b64encode(data).decode("ascii")
            if isinstance(data, str):
                bundle[mime] = data
    bundle["text/plain"] = repr(value)
    return bundle


REPORT_TEXT_MAX = 1_000_000  # printed characters the HTML report keeps; the log keeps all


class Printed:
    """Text a cell printed in a row: the pieces as printed (joined once, when the report is
    written: joining at every print made a loop of prints quadratic), and how much of it
    the report left to the log."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.omitted = 0


class Outputs:
    """Everything the cells showed, cell by cell, for the step's HTML report."""

    def __init__(self) -> None:
        self.cells: list[tuple[int, str, list[dict[str, str] | Printed]]] = []
        self.room = REPORT_TEXT_MAX

    def start(self, position: int, source: str) -> None:
        self.cells.append((position, source, []))

    def add(self, bundle: dict[str, str]) -> None:
        if self.cells:
            self.cells[-1][2].append(bundle)

    def write(self, text: str) -> None:
        """Printed text, merged with the text printed just before it; past REPORT_TEXT_MAX
        characters in all, only counted."""
        if not self.cells:
            return
        shown = self.cells[-1][2]
        printed = shown[-1] if shown and isinstance(shown[-1], Printed) else None
        if printed is None:
            printed = Printed()
            shown.append(printed)
        kept = text[: self.room]
        if kept:
            printed.pieces.append(kept)
            self.room -= len(kept)
        printed.omitted += len(text) - len(kept)

    def display(self, *values: Any, raw: bool = False, **_: Any) -> None:
        for value in values:
            bundle = dict(value) if raw else mime_bundle(value)
            if list(bundle) == ["text/plain"]:
                print(bundle["text/plain"])  # into the log, and through it into the report
            else:
                self.add(bundle)

    def html(self, title: str) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;margin:1em}pre{background:#f6f8fa;"
            "padding:.5em;overflow:auto}.cell{border-top:1px solid #ddd;margin-top:1em}"
            "</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
        ]
        for position, source, outputs in self.cells:
            parts.append(f'<div class="cell"><h3>Cell {position}</h3>')
            parts.append(f"<pre><code>{html.escape(source)}</code></pre>")
            for bundle in outputs:
                parts.append(_render(bundle))
            parts.append("</div>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _render(bundle: dict[str, str] | Printed) -> str:
    if isinstance(bundle, Printed):
        text = html.escape("".join(bundle.pieces))
        if bundle.omitted:
            text += (
                f'\n<span class="omitted">… {bundle.omitted:,} more characters printed here'
                " are only in the step's log</span>"
            )
        return f'<pre class="stream">{text}</pre>'
    if "image/png" in bundle:
        return f'<img src="data:image/png;base64,{bundle["image/png"]}">'
    if "text/html" in bundle:
        return bundle["text/html"]
    if "image/svg+xml" in bundle:
        return bundle["image/svg+xml"]
    if "text/markdown" in bundle:
        return f'<pre class="markdown">{html.escape(bundle["text/markdown"])}</pre>'
    return f"<pre>{html.escape(bundle.get('text/plain', ''))}</pre>"


class _Tee(io.TextIOBase):
    """Writes to the real stream (the pod's log) and records what a cell printed."""

    def __init__(self, stream: Any, record: Callable[[str], None]) -> None:
        self.stream = stream
        self.record = record

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.record(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _captured(outputs: Outputs) -> Iterator[None]:
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout = _Tee(real_out, outputs.write)
    sys.stderr = _Tee(real_err, outputs.write)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = real_out, real_err


def _collect_figures(outputs: Outputs) -> None:
    """Figures a cell left open become report images, as the inline backend would show."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        outputs.add(mime_bundle(pyplot.figure(number)))
    pyplot.close("all")


# --- values between steps --------------------------------------------------------------


def _qualified(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _root_module(value: Any) -> str:
    return type(value).__module__.split(".")[0]


class _Hashing:
    """A binary file, written only forward, that hashes what is written through it, so the
    digest of a value costs no second read: the engine keys downstream steps on it without
    opening the file.

    A small value is hashed as it is written. Once a value passes a megabyte, the rest of
    the file is hashed behind the writer instead (`_Behind`): a second thread reads back
    from the page cache what has reached the OS while the library goes on encoding
    (hashlib and file I/O release the GIL). The 530 MB Parquet file of
    benchmarks/data_passing.py's frame at 1e7 rows is written in 0.75 s instead of 0.98 s
    so, and the 85 MB pickle of a dict in 72 ms instead of 138. Handing the thread the data
    itself would mean copying every chunk, since a writer such as pyarrow reuses its buffer
    once `write` returns, and that copy cost as much as the hash it moved. Nothing can
    seek, so the file is exactly the bytes written, in order.
    """

    THREADED = 1 << 20  # once this much is written, hash behind the writer
    GATHERED = 1 << 16  # behind the writer, smaller writes reach the OS in batches this large

    def __init__(self, handle: Any, path: str) -> None:
        self.handle = handle
        self.path = path
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False
        self._gathered = bytearray()
        self._behind: _Behind | None = None
        self._in_line = not hasattr(os, "preadv")  # no preadv (Windows): hash in line

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        count = view.nbytes
        if self._behind is None and not self._in_line and self.size + count >= self.THREADED:
            self._go_behind()
        if self._behind is None:
            self.handle.write(view)
            self.sha256.update(view)
        elif count < self.GATHERED:
            self._gathered += view
            if len(self._gathered) >= self.GATHERED:
                self._hand_over()
        else:
            self._hand_over()
            self._behind.write(view)
        self.size += count
        return count

    def _go_behind(self) -> None:
        self.handle.flush()  # what came before is in the file, and hashed
        try:  # a file system that cannot read back a file being written keeps hashing in line
            reader = os.open(self.path, os.O_RDONLY)
        except OSError:
            self._in_line = True
            return
        try:
            self._behind = _Behind(self.handle.fileno(), reader, self.size, self.sha256)
        except RuntimeError:  # no thread to be had
            os.close(reader)
            self._in_line = True

    def _hand_over(self) -> None:
        if self._behind is not None and self._gathered:
            self._behind.write(memoryview(self._gathered))
            self._gathered = bytearray()

    def hexdigest(self) -> str | None:
        """The sha256 of all that was written; None when reading it back failed (the caller
        then hashes the file)."""
        if self._behind is None:
            return self.sha256.hexdigest()
        try:
            self._hand_over()  # may fail as any write (a full disk)...
        finally:
            behind, self._behind = self._behind, None
            digest = behind.finish()  # ...and still ends the thread
        return digest

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if self._behind is None:
            self.handle.flush()
        else:
            self._hand_over()

    def close(self) -> None:  # the owner of the real file closes it
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class _Behind:
    """Writes to a file, while a thread hashes what the OS already holds of it."""

    CHUNK = 1 << 20  # written and read back in pieces this large (into one reused buffer)

    def __init__(self, writer: int, reader: int, start: int, sha256: Any) -> None:
        self.writer = writer
        self.reader = reader  # closed by `finish`
        self.sha256 = sha256  # over the first `start` bytes so far
        self.written = start
        self.final = False
        self.failed = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._hash, args=(start,), daemon=True)
        self.thread.start()

    def write(self, view: memoryview) -> None:
        while view.nbytes:  # piece by piece, so a large write is hashed while it goes on
            count = os.write(self.writer, view[: self.CHUNK])
            view = view[count:]
            with self.changed:
                self.written += count
                self.changed.notify()

    def finish(self) -> str | None:
        with self.changed:
            self.final = True
            self.changed.notify()
        self.thread.join()
        os.close(self.reader)
        return None if self.failed else self.sha256.hexdigest()

    def _hash(self, hashed: int) -> None:
        buffer = memoryview(bytearray(self.CHUNK))
        try:
            while True:
                with self.changed:
                    while hashed == self.written and not self.final:
                        self.changed.wait()
                    written, final = self.written, self.final
                while hashed < written:
                    piece = buffer[: min(self.CHUNK, written - hashed)]
                    count = os.preadv(self.reader, [piece], hashed)
                    if count <= 0:
                        raise OSError(f"the file ends at {hashed} of {written} bytes written")
                    self.sha256.update(piece[:count])
                    hashed += count
                if final:
                    return
        except Exception:  # the digest is then taken from the finished file
            self.failed = True


def save_value(name: str, value: Any, path: str) -> str:
    """Write a variable for another step as one file at `path`; returns the format used."""
    fmt: str = write_value(name, value, path)["format"]
    return fmt


def write_value(name: str, value: Any, path: str) -> dict[str, Any]:
    """Write a value as one file in its library's own format; returns format, size, sha256.

    Type-aware formats first (they are smaller, faster and survive library upgrades better
    than pickles): Parquet for data frames it stores exactly (pyarrow), .npy for arrays,
    joblib for scikit-learn, torch and Keras files; cloudpickle for everything else, because
    it also carries functions and classes defined in the notebook. The file is the value as
    its library writes it, with no wrapper: `load_value` tells the format from the file's
    first bytes, a pod's artifact is one object any tool opens, and a reader memory-maps it.
    The sha256 is computed while writing; the same value gives the same bytes run after run.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    if os.path.isdir(path):  # a directory value of an earlier run at this path
        shutil.rmtree(path)
    with open(path, "wb") as handle:
        sink = _Hashing(handle, path)
        try:
            fmt = _save(value, sink, path)
        finally:
            hashed = sink.hexdigest()  # always ends the hashing thread
    if fmt in _WRITTEN_BY_NAME or hashed is None:
        size, digest = hash_file(path)
    else:
        size, digest = sink.size, hashed
    return {"format": fmt, "size": size, "sha256": digest}


# Parquet written for speed: plain, uncompressed columns without statistics. A value is
# read back once, whole, soon after: compressing and dictionary-encoding it (pyarrow's
# defaults) makes a 1e7-row frame's write 2-3x and its read 5-10x slower (measured with
# benchmarks/data_passing.py), to save disk space a step's file holds only until the next
# run replaces it.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": None,
    "use_dictionary": False,
    "write_statistics": False,
}
# Formats whose library writes a path itself (and may rewrite it): hashed after writing.
_WRITTEN_BY_NAME = frozenset({"torch", "keras"})
_PICKLE_PROTOCOL = 5


def format_imports(modules: list[str]) -> list[str]:
    """What saving and loading values imports on first use in a step whose code imports
    `modules`, so a process that forks steps can import it once for all of them.

    pandas reaches Parquet through pyarrow's dataset and filesystem layers: about 0.15 s of
    imports in every step process that loads or saves a frame, several times the step's own
    work for a model fitted on a small table. Nothing is imported here, only named; a name
    whose library is missing is left out.
    """
    roots = {name.partition(".")[0] for name in modules}
    names: list[str] = []
    if "pandas" in roots and importlib.util.find_spec("pyarrow") is not None:
        names += ["pyarrow.parquet", "pyarrow.dataset", "pandas.io.parquet"]
    if importlib.util.find_spec("cloudpickle") is not None:
        names.append("cloudpickle")
    return names


def hash_file(path: str) -> tuple[int, str]:
    """The size and sha256 of a value's file: what `write_value` reports, and how the local
    engine's cache checks a file it did not see written."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class _Module:
    """A module travels by name: unpickling imports it (a plain pickle cannot carry one)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return importlib.import_module, (self.name,)


def _save(value: Any, sink: _Hashing, path: str) -> str:
    root = _root_module(value)
    if isinstance(value, types.ModuleType):
        pickle.dump(_Module(value.__name__), sink, protocol=_PICKLE_PROTOCOL)
        return "module"
    if root == "pandas" and hasattr(value, "to_pickle"):
        if _parquet_faithful(value):
            value.to_parquet(sink, engine="pyarrow", **_PARQUET_OPTIONS)
            return "parquet"
        pickle.dump(value, sink, protocol=_PICKLE_PROTOCOL)
        return "pandas-pickle"
    if root == "numpy" and type(value).__name__ == "ndarray" and value.dtype != object:
        sys.modules["numpy"].save(sink, value, allow_pickle=False)
        return "npy"
    if root == "sklearn" and _importable("joblib"):
        import joblib

        joblib.dump(value, sink)
        return "joblib"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, (torch.nn.Module, torch.Tensor)):
        sink.handle.close()
        torch.save(value, path)
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        sink.handle.close()
        named = path + ".keras"  # Keras insists on the suffix
        value.save(named)
        os.replace(named, path)
        return "keras"
    if _importable("cloudpickle"):
        import cloudpickle

        cloudpickle.dump(value, sink, protocol=_PICKLE_PROTOCOL)
        return "cloudpickle"
    pickle.dump(value, sink, protocol=_PICKLE_PROTOCOL)
    return "pickle"


# What Parquet gives back exactly (dtype for dtype, value for value), by pandas dtype name:
# numbers, booleans, tz-naive datetimes, and pandas' text. Anything else goes to a pickle, which
# keeps it all; so do column names that are not unique strings, MultiIndexes and attrs.
_PARQUET_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
    | {"float32", "float64", "str", "datetime64[ns]", "datetime64[us]"}
    | {"datetime64[ms]", "datetime64[s]"}
)


def _parquet_faithful(value: Any) -> bool:
    """Whether a pandas object survives Parquet unchanged; checked, not hoped for."""
    pandas = sys.modules["pandas"]
    if type(value) is not pandas.DataFrame or not _importable("pyarrow"):
        return False
    if value.attrs or not value.flags.allows_duplicate_labels:
        return False
    columns, index = value.columns, value.index
    if type(columns) is not pandas.Index or columns.name is not None:
        return False
    labels = list(columns)
    if not all(type(label) is str and not label.startswith("__") for label in labels):
        return False
    if len(set(labels)) != len(labels) or not _parquet_column(columns):
        return False
    if type(index) is pandas.RangeIndex:
        if index.name is not None and (type(index.name) is not str or index.name in labels):
            return False
    elif type(index) is not pandas.Index or index.name is not None or not _parquet_column(index):
        return False
    return all(_parquet_column(value.iloc[:, i]) for i in range(len(labels)))


def _parquet_column(column: Any) -> bool:
    """A column (or an index) of a dtype Parquet restores as it was."""
    pandas = sys.modules["pandas"]
    dtype = column.dtype
    if str(dtype) == "str":
        # pandas' default text, which is what Parquet text comes back as (text in an
        # object column comes back as `str`, so that goes to a pickle)
        try:
            return bool(dtype == pandas.StringDtype(na_value=float("nan")))
        except TypeError:  # pragma: no cover - pandas before 2.3
            return False
    return str(dtype) in _PARQUET_DTYPES


def _importable(module: str) -> bool:
    if sys.modules.get(module) is not None:
        return True
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


class _JoblibStream(Exception):
    """The pickle holds joblib's array wrappers: only joblib can read what follows them."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "joblib.numpy_pickle":
            raise _JoblibStream
        return super().find_class(module, name)


def load_value(path: str) -> Any:
    """Read a value `save_value` wrote, without copying it where the format allows.

    The format is told by the file's first bytes. Arrays are memory-mapped copy-on-write:
    a step may change its input in place without touching the producer's file (which the
    cache keeps and other steps read). A tar file (or a directory holding its members) is
    a value of an earlier kfg, which wrapped every value in one.
    """
    if os.path.isdir(path):
        return _load_legacy(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(b"\x80"):  # a pickle: cloudpickle, pandas, joblib, module
            handle.seek(0)
            try:
                return _Unpickler(handle).load()
            except _JoblibStream:
                pass
    if head.startswith(b"\x80"):
        return importlib.import_module("joblib").load(path)
    if head.startswith(b"PAR1"):
        return _load_parquet(path)
    if head.startswith(b"\x93NUMPY"):
        return _load_npy(path)
    if head.startswith(b"PK"):
        return _load_zip(path)
    if tarfile.is_tarfile(path):
        with tempfile.TemporaryDirectory(prefix="kfg-value-") as scratch:
            with tarfile.open(path) as archive:
                if hasattr(tarfile, "data_filter"):  # refuse links and paths outside `scratch`
                    archive.extractall(scratch, filter="data")
                else:  # pragma: no cover - Python before 3.11.4
                    archive.extractall(scratch)
            return _load_legacy(scratch)
    raise StepFailed(f"{path} holds no value kfg wrote (it starts with {head!r})")


def _load_parquet(path: str) -> Any:
    # Memory-mapped, so the file is decoded from the page cache without a read copy. The
    # columns are then copied into pandas' own blocks: Arrow's zero-copy conversion
    # (split_blocks) would give read-only columns, and `df.loc[i, "a"] = x` would fail.
    if not _importable("pyarrow"):
        raise ImportError(
            "the value is a Parquet file, which needs pyarrow: add pyarrow to this step's"
            " packages, as the step that wrote it has"
        )
    pandas = importlib.import_module("pandas")
    if os.path.getsize(path) < _MALLOC_DECODE_FROM:
        return pandas.read_parquet(path, engine="pyarrow", memory_map=True)
    with _decoding_with_malloc(importlib.import_module("pyarrow")):
        frame = pandas.read_parquet(path, engine="pyarrow", memory_map=True)
    _return_freed_memory()
    return frame


# From this size on, a Parquet value is decoded with the C library's allocator (see
# `_decoding_with_malloc`). Below it Arrow's own pool is faster and the pages it keeps cost
# the step little: loading a 1e6-row frame (55 MB) then filtering it took 55 ms against
# 82 ms, and 143 ms against 198 ms at 165 MB (medians of 3, each in a process forked from
# one that had imported pandas, as steps are). From about 300 MB Arrow's pool sometimes
# made the step's next arrays several times slower (a 384 MB load and filter: 0.32 s or
# 1.05 s, against a steady 0.42 s), and at 549 MB always (1.3-1.45 s against 0.6 s).
_MALLOC_DECODE_FROM = 256 << 20


@contextlib.contextmanager
def _decoding_with_malloc(pyarrow: Any) -> Iterator[None]:
    """Decode with the C library's allocator, so that the decoded columns, freed once
    pandas has copied them, go back to the OS (`_return_freed_memory`) and are the pages
    the step's own arrays get next. Arrow's default pool (mimalloc or jemalloc) keeps what
    is freed to itself, and the step's first arrays then fault in new pages: on a virtual
    machine that hands freed memory back to its host that is several times slower. Only
    this read uses it: what the step's own code allocates through Arrow goes to Arrow's
    pool as before, and a buffer is freed to the pool it came from."""
    choose = getattr(pyarrow, "set_memory_pool", None)
    if choose is None:
        yield
        return
    before = pyarrow.default_memory_pool()
    choose(pyarrow.system_memory_pool())
    try:
        yield
    finally:
        choose(before)


def _return_freed_memory() -> None:
    """Give the C heap's free memory back to the OS (glibc keeps freed blocks below its
    mmap threshold, which a large load raises to 32 MB). Without it, a loaded frame's step
    peaks 14% higher at 1e7 rows (benchmarks/data_passing.py's transform), as the heap
    holds decoded pages its arrays, allocated with mmap, never reuse; with it, the load and
    the transforming cell peak 4% lower than with Arrow's pool and take 0.9 s instead of
    1.5 s (medians of 6, alternating). A no-op where the C library has no malloc_trim."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):  # no ctypes, or musl: nothing kept to trim
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _load_npy(path: str) -> Any:
    numpy = importlib.import_module("numpy")
    try:
        mapped = numpy.load(path, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError):  # nothing to map (an empty array), or no mmap here
        return numpy.load(path, allow_pickle=False)
    return numpy.asarray(mapped)  # an ndarray over the private mapping, as the producer had


def _load_zip(path: str) -> Any:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return importlib.import_module("torch").load(path, weights_only=False)
    keras = importlib.import_module("keras")
    with tempfile.TemporaryDirectory(prefix="kfg-value-") as scratch:
        named = os.path.join(scratch, "value.keras")  # Keras reads by suffix
        os.symlink(os.path.abspath(path), named)
        return keras.models.load_model(named)


def _load_legacy(directory: str) -> Any:
    """A value an earlier kfg wrote: its members and `kfg-value.json` naming their format."""
    with open(os.path.join(directory, VALUE_META), encoding="utf-8") as handle:
        meta = json.load(handle)
    fmt = meta["format"]
    path = os.path.join(directory, "value")
    if fmt == "module":
        return importlib.import_module(meta["data"])
    if fmt == "parquet":
        return importlib.import_module("pandas").read_parquet(path + ".parquet")
    if fmt == "pandas-pickle":
        return importlib.import_module("pandas").read_pickle(path + ".pkl")
    if fmt == "npy":
        return importlib.import_module("numpy").load(path + ".npy", allow_pickle=False)
    if fmt == "joblib":
        return importlib.import_module("joblib").load(path + ".joblib")
    if fmt == "torch":
        return importlib.import_module("torch").load(path + ".pt", weights_only=False)
    if fmt == "keras":
        return importlib.import_module("keras").models.load_model(path + ".keras")
    if fmt in ("cloudpickle", "pickle"):
        with open(path + ".pkl", "rb") as handle:
            return pickle.load(handle)
    raise StepFailed(f"unknown value format `{fmt}` in {directory}")


def restore_value(path: str, namespace: dict[str, Any]) -> Any:
    """A value as a step receives it, for a notebook cell: `x = restore_value(p, globals())`."""
    return _adopt(load_value(path), namespace)


def _adopt(value: Any, namespace: dict[str, Any]) -> Any:
    """Make a function or class defined in the notebook see this step's globals.

    In a notebook a function reads globals when it is called; after unpickling it would
    read a private copy instead. Rebinding restores the notebook's behaviour.
    """
    if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
        adopted = types.FunctionType(
            value.__code__, namespace, value.__name__, value.__defaults__, value.__closure__
        )
        adopted.__kwdefaults__ = value.__kwdefaults__
        adopted.__dict__.update(value.__dict__)
        adopted.__qualname__ = value.__qualname__
        return adopted
    if isinstance(value, type) and value.__module__ == "__main__":
        for attribute, member in list(vars(value).items()):
            if isinstance(member, (staticmethod, classmethod)):
                rebound = _adopt(member.__func__, namespace)
                setattr(value, attribute, type(member)(rebound))
            elif isinstance(member, types.FunctionType):
                setattr(value, attribute, _adopt(member, namespace))
    return value


# --- running cells ---------------------------------------------------------------------


def _cell_filename(position: int) -> str:
    return f"<cell {position}>"


# A cell may `await` at the top level, as in Jupyter (IPython's autoawait): the cell then
# compiles to a coroutine, run to completion on one event loop that lives as long as the
# step, so what one cell binds to the loop (a client session, a queue) works in the next.
_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x0080  # inspect.CO_COROUTINE, without importing inspect into every step
_loop: Any = None


def _run(code: types.CodeType, namespace: dict[str, Any]) -> Any:
    result = eval(code, namespace)
    if not code.co_flags & _CO_COROUTINE:
        return result
    global _loop
    if _loop is None:
        import asyncio

        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(result)


def run_cell(position: int, source: str, namespace: dict[str, Any], outputs: Outputs) -> None:
    """Execute one cell; display its last expression unless it ends with `;`."""
    filename = _cell_filename(position)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    python = transform(source)
    tree = ast.parse(python, filename)
    last: ast.Expression | None = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr) and not python.rstrip().endswith(";"):
        tree.body.pop()
        last = ast.Expression(final.value)
    try:
        _run(compile(tree, filename, "exec", _TOP_LEVEL_AWAIT, dont_inherit=True), namespace)
        if last is not None:
            value = _run(
                compile(last, filename, "eval", _TOP_LEVEL_AWAIT, dont_inherit=True), namespace
            )
            if value is not None:
                namespace["_"] = value
                outputs.display(value)
    finally:
        shell = namespace.get("get_ipython")
        end_capture = getattr(shell() if callable(shell) else None, "end_capture", None)
        if end_capture is not None:
            end_capture()  # a %%capture lasts as long as its cell


def _failure(step: str, exc: BaseException) -> str:
    """`cell 17, line 3: ZeroDivisionError: division by zero`, from the innermost cell frame."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        match = re.fullmatch(r"<cell (\d+)>", frame.filename)
        if match:
            where = f" in cell {match.group(1)}, line {frame.lineno}"
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith("<cell "):
        where = f" in {exc.filename.strip('<>')}, line {exc.lineno}"
    return f"step `{step}` failed{where}: {type(exc).__name__}: {exc}"


def _traceback(exc: BaseException) -> str:
    """The traceback from the first notebook frame on; the runtime's own frames are noise."""
    frames = traceback.extract_tb(exc.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename.startswith("<cell ")), 0)
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames[first:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def run_step(
    *,
    pipeline: str,
    step: str,
    prelude: list[tuple[int, str]],
    cells: list[tuple[int, str]],
    parameters: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    metrics: dict[str, str],
    report: str | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    consumers: dict[str, list[str]] | None = None,
    digests: str | None = None,
) -> dict[str, float]:
    """Run the step; returns its metrics. Raises StepFailed with a notebook-level cause.

    `inputs` and `outputs` map variable names to files; `metrics` maps metric names to the
    variables holding them; `consumers` names the steps that read each output, so a value
    that cannot be saved is reported with both ends of its edge. `digests`, when given, is
    a JSON file to write each output's size and sha256 to, as computed while writing it:
    the local engine's cache takes them from there instead of reading the files again.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    shown = Outputs()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace["display"] = shown.display
    shell = Shell(namespace, shown.display)
    namespace["get_ipython"] = lambda: shell
    namespace.update(parameters)

    def execute(position: int, source: str) -> None:
        shown.start(position, source)
        with _captured(shown):
            run_cell(position, source, namespace, shown)
        _collect_figures(shown)

    try:
        for position, source in prelude:
            execute(position, source)
        for variable, directory in sorted(inputs.items()):
            try:
                namespace[variable] = restore_value(directory, namespace)
            except Exception as exc:
                raise StepFailed(
                    f"step `{step}` cannot load input `{variable}` from {directory}:"
                    f" {type(exc).__name__}: {exc}"
                ) from exc
        for position, source in cells:
            execute(position, source)
    except StepFailed:
        raise
    except BaseException as exc:  # the notebook's own error, in the notebook's terms
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.stderr.write(_traceback(exc))
        raise StepFailed(_failure(step, exc)) from exc
    finally:
        if report is not None:
            _write_report(report, f"{pipeline} / {step}", shown)

    written: dict[str, dict[str, Any]] = {}
    for variable, target in sorted(outputs.items()):
        if variable not in namespace:
            raise StepFailed(
                f"step `{step}` should pass `{variable}` to later steps, but its cells did not"
                " define it (is it assigned only on some branch?)"
            )
        value = namespace[variable]
        try:
            written[variable] = write_value(variable, value, target)
        except Exception as exc:
            readers = (consumers or {}).get(variable, [])
            raise StepFailed(_unsaveable(step, variable, value, readers, exc)) from exc
    if digests is not None:
        with open(digests, "w", encoding="utf-8") as handle:
            json.dump(written, handle, sort_keys=True)
    return _report_metrics(step, metrics, namespace, log_metric)


def _unsaveable(
    step: str, variable: str, value: Any, readers: list[str], exc: BaseException
) -> str:
    """Why a value cannot travel, between which steps, and the ways around it."""
    to = ", ".join(f"`{r}`" for r in readers) if readers else "later steps"
    kind = _qualified(value)
    cause = f"{type(exc).__name__}: {exc}"
    if callable(value) and not _importable("cloudpickle"):
        advice = "add cloudpickle to the step's packages, which carries functions and classes"
    else:
        here = f"`{readers[0]}`" if len(readers) == 1 else "the step that uses it"
        advice = (
            f"build `{variable}` in {here} instead (move the cell that creates it there),"
            " or pass what it is made from (arrays, data frames, file paths) and rebuild it"
        )
    return (
        f"`{variable}` (a {kind}) cannot be passed from step `{step}` to {to}: the"
        f" serializer kfg uses between steps cannot save it ({cause}); {advice}"
    )


def _report_metrics(
    step: str,
    metrics: dict[str, str],
    namespace: dict[str, Any],
    log_metric: Callable[[str, float], None] | None,
) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, variable in metrics.items():
        value = namespace.get(variable)
        number = None
        if not _boolean(value) and value is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                pass
            except Exception as exc:  # an int past float's range, a class's own __float__
                raise StepFailed(
                    f"step `{step}`: metric `{name}` reads `{variable}`, a"
                    f" {_qualified(value)} that is no float: {type(exc).__name__}: {exc}"
                ) from exc
        if number is None:
            raise StepFailed(
                f"step `{step}`: metric `{name}` reads `{variable}`, which is"
                f" {'not defined' if variable not in namespace else 'a ' + _qualified(value)},"
                " not a number"
            )
        values[name] = number
        print(metric_line(step, name, number), flush=True)
        if log_metric is not None:
            log_metric(name, number)
    return values


def _boolean(value: Any) -> bool:
    """A truth value, which kfg never reports as a metric (`acc = score > 0.9` is a slip,
    not an accuracy): Python's bool, and NumPy's (`np.bool_`, or a 0-d boolean array),
    which float() would quietly turn into 0.0 or 1.0."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b"


def _write_report(path: str, title: str, shown: Outputs) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(shown.html(title))


def main(**arguments: Any) -> None:
    """Entry point of a Kubeflow component: run the step, exit 1 with one clear line."""
    try:
        run_step(**arguments)
    except StepFailed as exc:
        sys.stderr.write(f"kfg: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None

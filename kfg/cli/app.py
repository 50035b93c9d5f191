"""The `kfg` application: every command, and what an error turns into.

Commands import what they need inside their functions, so `kfg validate` never pays for
the imports of `kfg render` (kfp alone costs about a second).
"""

from __future__ import annotations

import contextlib
import sys

import typer

from kfg import __version__
from kfg.cli import (
    cells,
    diff,
    doctor,
    fix,
    fn,
    graph,
    init,
    render,
    restore,
    run,
    schedule_run,
    schema,
    status,
    submit,
    trial,
    tune,
    validate,
)
from kfg.cli.crashlog import write_crash_log
from kfg.errors import EXIT_BUG, KfgError

app = typer.Typer(
    name="kfg",
    help="Ship Jupyter notebooks as Kubeflow pipelines: kale.yaml in, GitOps manifests out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kfg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Ship Jupyter notebooks as Kubeflow pipelines: kale.yaml in, GitOps manifests out."""
    _printable_streams()  # here too, for the app called without main (typer's CliRunner)


app.command("validate")(validate.command)
app.command("cells")(cells.command)
app.command("init")(init.command)
app.command("schema")(schema.command)
app.command("graph")(graph.command)
app.command("render")(render.command)
app.command("trial")(trial.command)
app.command("submit")(submit.command)
app.command("schedule-run")(schedule_run.command)
app.command("status")(status.command)
app.command("restore")(restore.command)
app.command("run")(run.command)
app.command("tune")(tune.command)
app.command("diff")(diff.command)
app.command("doctor")(doctor.command)
app.command("fix")(fix.command)
app.add_typer(fn.app, name="fn")


def _printable_streams() -> None:
    """Text kfg echoes from its input may hold what the terminal's encoding cannot: a lone
    surrogate in a notebook cell (JSON allows "\\ud800"), or any non-ASCII character under
    LANG=C. It is printed escaped instead of ending the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main() -> None:
    """Entry point: expected failures end in one line and their exit status; a bug in kfg
    ends in one line saying so (exit 3) and the traceback goes to a log, as pre-commit does."""
    _printable_streams()
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("kfg: interrupted\n")
        sys.exit(130)
    except KfgError as exc:
        sys.stderr.write(f"kfg: {exc}\n")
        sys.exit(exc.exit_code)
    except Exception as exc:
        log = write_crash_log(exc)
        sys.stderr.write(
            f"kfg: internal error ({type(exc).__name__}): this is a bug in kfg, not in your"
            f" input. The traceback is in {log}; please report it with the input that caused"
            " it\n"
        )
        sys.exit(EXIT_BUG)

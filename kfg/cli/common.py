"""What several commands share: usage errors, atomic file writes, and the options of the
commands a rendered Job runs in the cluster (`kfg trial`, `kfg schedule-run`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from kfg.config.model import DEFAULT_KFP_ENDPOINT

if TYPE_CHECKING:
    from kfg.core.load import LoadResult
    from kfg.engine.cache import Cache

EXIT_INVALID = 1
EXIT_USAGE = 2

# The options `kfg trial` and `kfg schedule-run` share, declared once: the command lines
# kfg renders for a Katib trial (kfg.render.launcher) and a schedule's CronJob
# (kfg.render.schedules) pass them.
Pipeline = Annotated[str, typer.Option("--pipeline", help="Name of the KFP Pipeline.")]
Version = Annotated[str, typer.Option("--version", help="Name of the PipelineVersion to run.")]
Endpoint = Annotated[
    str,
    typer.Option("--endpoint", envvar="KF_PIPELINES_ENDPOINT", help="URL of the KFP API server."),
]
ENDPOINT = DEFAULT_KFP_ENDPOINT  # the in-cluster address of KFP's API server
Namespace = Annotated[str | None, typer.Option("--namespace", help="Kubeflow profile namespace.")]
Experiment = Annotated[
    str | None,
    typer.Option("--experiment", help="KFP experiment for the run (default: the pipeline's name)."),
]
Poll = Annotated[float, typer.Option("--poll", help="Seconds between status checks.")]
TypedParams = Annotated[
    list[str] | None,
    typer.Option(
        "--param", help="Parameter as name:type=value, type one of int, float, str, bool."
    ),
]


def usage_error(message: str) -> NoReturn:
    typer.echo(f"kfg: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def no_file_reason(path: Path) -> str | None:
    """Why `path` cannot be read as the file a command wants; None when it can."""
    if path.is_file():
        return None
    if path.is_dir():
        return "is a directory; name a file"
    if os.path.lexists(path):
        return "is not a regular file (a special file, or a link that leads nowhere)"
    return "no such file"


def fail(message: str) -> NoReturn:
    typer.echo(f"kfg: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _umask() -> int:
    """The process umask; reading it means setting it, so it is set straight back."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    mkstemp creates the file 0600; the result gets the mode `open()` would have given it
    (0666 less the umask), or the mode of the file it replaces, so a kale.yaml is as
    readable to the team and to CI as any other file the user writes.
    """
    if path.is_dir():
        usage_error(f"{path} is a directory; name the file to write")
    try:
        _write_atomic(path, text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_exit(path: Path, root: Path | None = None) -> LoadResult:
    """A valid kale.yaml's load result; otherwise its findings on stderr and exit status 1.

    Warnings are printed too, so commands that go on to produce output still show them.
    """
    from kfg.cli.report import text
    from kfg.core.load import load_pipeline

    if reason := no_file_reason(path):
        usage_error(f"{path}: {reason}")
    result = load_pipeline(path, root=root)
    if result.diagnostics:
        typer.echo(text(result.diagnostics), err=True)
    if not result.ok or result.pipeline is None or result.flow is None:
        raise typer.Exit(EXIT_INVALID)
    return result


def config_files_or_exit(
    paths: list[Path] | None, root: Path | None
) -> tuple[list[Path], list[Path]]:
    """(targets, kale.yaml files) for commands taking files or directories; usage errors exit 2."""
    from kfg.core.load import find_config_files

    targets = paths or [Path(".")]
    for target in targets:
        if not target.exists():
            usage_error(f"{target}: no such file or directory")
    if root is not None and not root.is_dir():
        usage_error(f"--root {root}: not a directory")
    # One file given twice, or also found below a directory given, is one pipeline.
    seen: set[str] = set()
    files = []
    for found in find_config_files(targets):
        real = os.path.realpath(found)  # no exception on a symlink loop, unlike resolve()
        if real not in seen:
            seen.add(real)
            files.append(found)
    if not files:
        usage_error("no kale.yaml found in " + ", ".join(str(t) for t in targets))
    return targets, files


def cache_or_exit(cache_dir: Path | None, config: Path) -> Cache:
    """The step cache of `kfg run` and `kfg tune`: --cache-dir, or .kfg at the repository's
    top; a directory that cannot be made is refused before anything runs."""
    from kfg.core.load import repository_root
    from kfg.engine.cache import Cache

    root = cache_dir or repository_root(config.parent) / ".kfg"
    if root.exists() and not root.is_dir():
        usage_error(f"--cache-dir: {root} is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot use the cache directory {root}: {exc.strerror or exc}")
    return Cache(root, warn=lambda message: typer.echo(message, err=True))

"""`kfg init`: write a kale.yaml beside a notebook."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer

from kfg.cli.common import fail, no_file_reason, usage_error


def _schema_ref(target: Path, explicit: str | None) -> str:
    """The modeline's schema: as given, kfg's own copy in this repository, or the published URL."""
    from kfg.config.schema import SCHEMA_ID
    from kfg.core.load import repository_root

    if explicit:
        if "://" in explicit:
            return explicit
        return os.path.relpath(Path(explicit).resolve(), target.parent.resolve())
    local = repository_root(target.parent) / "schemas" / "kale.schema.json"
    if local.is_file():
        return os.path.relpath(local, target.parent.resolve())
    return SCHEMA_ID


def command(
    notebook: Path = typer.Argument(..., help="The notebook to describe."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write (default: kale.yaml beside the notebook)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Pipeline name (default: from Kale metadata or the file name)."
    ),
    schema: str | None = typer.Option(
        None, "--schema", help="Schema URL or path for the yaml-language-server modeline."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing kale.yaml."),
) -> None:
    """Propose a kale.yaml for a notebook.

    From its Kale tags and metadata if it has them, otherwise one step per `##` section.
    """
    from kfg.cli.common import write_atomic
    from kfg.cli.report import text
    from kfg.core.load import display_path, load_pipeline
    from kfg.kube.names import is_dns_label
    from kfg.notebook.reader import NotebookError, read_notebook
    from kfg.scaffold import anchor_to_ids, propose
    from kfg.scaffold.fix import FixError, fix_text
    from kfg.scaffold.writer import to_yaml

    if reason := no_file_reason(notebook):
        usage_error(f"{notebook}: {reason}")
    if name is not None and not is_dns_label(name):
        usage_error(f"--name `{name}` must be a DNS-1123 label (lowercase letters, digits and '-')")
    target = output or notebook.parent / "kale.yaml"
    if target.exists() and not force:
        fail(f"{display_path(target)} already exists; pass --force to overwrite it")
    try:
        nb = read_notebook(notebook)
    except NotebookError as exc:
        fail(f"{display_path(notebook)}:{exc.line}:{exc.column}: {exc.message}")

    proposal = propose(nb, name)
    anchor_to_ids(proposal, nb)
    relative = os.path.relpath(notebook.resolve(), target.parent.resolve())
    proposal.data["spec"]["notebook"] = Path(relative).as_posix()
    document = to_yaml(
        proposal.data,
        schema_ref=_schema_ref(target, schema),
        header=[
            f"Proposed by `kfg init` from {notebook.name} ({proposal.source})."
            " Review it, then run `kfg validate`."
        ],
    )
    for note in proposal.notes:
        typer.echo(f"note: {note}", err=True)
    # Record each referenced cell's fingerprint, as `kfg fix` does, so later edits to the
    # notebook are noticed.
    with contextlib.suppress(FixError):  # the check below says why it does not load
        document = fix_text(document, target).fixed
    check = load_pipeline(target, text=document)
    if not check.ok:
        # The diagnostics cite lines of a file that was not written: print it, so they can
        # be followed (and the draft saved with `> kale.yaml` to fix by hand).
        typer.echo(document, nl=False)
        typer.echo(text(check.diagnostics), err=True)
        fail(
            f"the proposed kale.yaml would not be valid, so {display_path(target)} was not"
            " written; the proposal is on stdout and the lines above refer to it"
        )
    write_atomic(target, document)
    steps = len(proposal.data["spec"]["steps"])
    typer.echo(f"wrote {display_path(target)}: {steps} step(s) from {proposal.source}")
    if check.diagnostics:
        typer.echo(text(check.diagnostics), err=True)

"""`kfg render`: write the Kubeflow manifests of kale.yaml files as a kustomize/kpt package."""

from __future__ import annotations

from pathlib import Path

import typer

from kfg.cli.common import EXIT_INVALID, config_files_or_exit, fail, usage_error


def command(
    paths: list[Path] | None = typer.Argument(
        None, help="kale.yaml files, or directories to search for them (default: .)."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Output directory. One kale.yaml: the package itself (default: deploy/NAME)."
        " Several: one subdirectory per pipeline and a kustomization over all (default: deploy).",
    ),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 with a diff if the output is stale."
    ),
    stdout: bool = typer.Option(
        False, "--stdout", help="Print the objects to apply as one YAML stream; write nothing."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an output directory that holds files kfg did not write."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Repository root (default: the git top level)."
    ),
    launcher_image: str | None = typer.Option(
        None,
        "--launcher-image",
        help="Image of the trial launcher (kfg), overriding spec.launcher.image.",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Pipelines rendered at once, one process each (default: one per CPU).",
    ),
) -> None:
    """Render Pipeline and PipelineVersion manifests, the pipeline IR, kustomization and Kptfile.

    Exit status: 0 rendered (or up to date with --check), 1 invalid input or stale output,
    2 usage error.
    """
    from kfg.cli.report import text
    from kfg.core.load import display_path, repository_root
    from kfg.core.project import aggregate_conflicts, load_project, render_project

    if check and stdout:
        usage_error("--check and --stdout cannot be combined")
    targets, files = config_files_or_exit(paths, root)

    project = load_project(files, root)
    if project.ok:
        project = render_project(project, root, launcher_image=launcher_image, jobs=jobs)
    if project.diagnostics:
        typer.echo(text(project.diagnostics), err=True)
    if not project.ok:
        fail("nothing rendered: fix the errors above")
    rendered = project.rendered

    from kfg.render.build import aggregate, relative_to_root
    from kfg.render.package import NotOurs, diff, write
    from kfg.render.yamlout import dump_all

    repo = (root or repository_root(files[0].parent)).resolve()
    if stdout:
        typer.echo(dump_all([o for r in rendered for o in r.objects]), nl=False)
        return
    single = len(paths or []) == 1 and paths is not None and paths[0].is_file()
    if single:
        package = rendered[0].package
        target = output or Path("deploy") / rendered[0].pipeline.name
    else:
        conflicts = aggregate_conflicts(project)
        if conflicts:
            typer.echo(text(conflicts), err=True)
            fail("nothing rendered: fix the errors above")
        label = ", ".join(sorted(relative_to_root(t, repo) for t in targets))
        package = aggregate(rendered, label)
        target = output or Path("deploy")

    if check:
        stale = diff(package, target)
        if stale:
            typer.echo(stale, nl=False)
            typer.echo(
                f"kfg: {display_path(target)} is stale; run `kfg render` and commit the result",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
        typer.echo(f"{display_path(target)}: up to date")
        return
    try:
        notebooks = [item.pipeline.notebook for item in rendered]
        write(package, target, force=force, keep=[repo, *files, *notebooks])
    except NotOurs as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {display_path(target)}: {exc.strerror or exc}")
    for item in rendered:
        typer.echo(f"{item.source}: rendered pipeline version {item.version}")
    typer.echo(f"wrote {display_path(target)} ({len(package.files)} files)")

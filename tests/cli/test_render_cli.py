"""`kfg render` and `kfg graph` from the command line: files, exit codes, drift checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kfg.render import package as package_module
from tests.cli.test_cli import kfg
from tests.conftest import EXAMPLES


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Both examples in a private git repository."""
    (tmp_path / ".git").mkdir()
    for name in ("wine", "digits"):
        shutil.copytree(EXAMPLES / name, tmp_path / "notebooks" / name)
    return tmp_path


def test_render_one_pipeline_then_check(repo: Path) -> None:
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", "deploy/wine", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "notebooks/wine/kale.yaml: rendered pipeline version wine-quality-" in result.stdout
    out = repo / "deploy" / "wine"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        ".krmignore",
        "Kptfile",
        "kustomization.yaml",
        "pipeline.ir.yaml",
        "pipeline/kustomization.yaml",
        "pipeline/pipeline.yaml",
        "pipeline/runtime.yaml",
        "release/kustomization.yaml",
        "release/version.yaml",
    ]
    check = kfg("render", "notebooks/wine/kale.yaml", "-o", "deploy/wine", "--check", cwd=repo)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "up to date" in check.stdout


def test_check_reports_stale_output_as_a_diff(repo: Path) -> None:
    assert kfg("render", "notebooks/wine/kale.yaml", "-o", "out", cwd=repo).returncode == 0
    kale = repo / "notebooks" / "wine" / "kale.yaml"
    kale.write_text(kale.read_text().replace('cpu: "2"', 'cpu: "3"'))
    check = kfg("render", "notebooks/wine/kale.yaml", "-o", "out", "--check", cwd=repo)
    assert check.returncode == 1
    assert "-              resourceCpuRequest: '2'" in check.stdout
    assert "+              resourceCpuRequest: '3'" in check.stdout
    assert "--- a/out/release/version.yaml" in check.stdout
    assert "is stale" in check.stderr


def test_render_repository_aggregates_every_pipeline(repo: Path) -> None:
    result = kfg("render", cwd=repo)
    assert result.returncode == 0, result.stderr
    top = yaml.safe_load((repo / "deploy" / "kustomization.yaml").read_text())
    assert top["resources"] == ["digits-mlp", "wine-quality"]
    assert (repo / "deploy" / "wine-quality" / "pipeline" / "pipeline.yaml").is_file()
    for stage in ("pipeline", "release"):
        listed = yaml.safe_load((repo / "deploy" / stage / "kustomization.yaml").read_text())
        assert listed["resources"] == [f"../digits-mlp/{stage}", f"../wine-quality/{stage}"]
    assert kfg("render", "--check", cwd=repo).returncode == 0


def test_a_pipeline_named_like_a_stage_cannot_join_an_aggregate(repo: Path) -> None:
    kale = repo / "notebooks" / "wine" / "kale.yaml"
    kale.write_text(kale.read_text().replace("name: wine-quality", "name: release", 1))
    result = kfg("render", cwd=repo)
    assert result.returncode == 1
    assert "a pipeline named `release` cannot share a package" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / "deploy").exists()


def test_invalid_input_writes_nothing(repo: Path) -> None:
    kale = repo / "notebooks" / "wine" / "kale.yaml"
    kale.write_text(kale.read_text().replace('cells: ["id:results"]', "cells: [99]"))
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", "out", cwd=repo)
    assert result.returncode == 1
    assert "kale.yaml:" in result.stderr and "nothing rendered" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / "out").exists()


def test_refuses_to_replace_files_it_did_not_write(repo: Path) -> None:
    (repo / "out").mkdir()
    (repo / "out" / "notes.md").write_text("mine\n")
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", "out", cwd=repo)
    assert result.returncode == 1
    assert "holds files kfg did not generate" in result.stderr
    assert (repo / "out" / "notes.md").read_text() == "mine\n"


def test_usage_errors_exit_2(repo: Path) -> None:
    assert kfg("render", "missing.yaml", cwd=repo).returncode == 2
    assert kfg("render", "--check", "--stdout", cwd=repo).returncode == 2
    assert kfg("graph", "notebooks/wine/kale.yaml", "-f", "svg", cwd=repo).returncode == 2


def test_stdout_prints_the_objects(repo: Path) -> None:
    result = kfg("render", "notebooks/digits/kale.yaml", "--stdout", cwd=repo)
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == [
        "ConfigMap",
        "Pipeline",
        "PipelineVersion",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Experiment",
    ]
    assert not (repo / "deploy").exists()


def test_failed_write_keeps_the_previous_output(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = repo / "out"
    package_module.write(
        package_module.Package({"a.yaml": f"{package_module.GENERATED}\nold\n"}), target
    )
    real_replace = os.replace
    failures = [OSError(28, "No space left on device")]

    def failing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(str(dst)) == target and failures:  # the new output cannot take its place
            raise failures.pop()
        real_replace(src, dst)

    # kfg.render.package calls os.replace through the os module: patch it there.
    monkeypatch.setattr(os, "replace", failing)
    # The two-rename fallback (where the system cannot exchange two directories).
    monkeypatch.setattr(package_module, "exchange", lambda a, b: False)
    with pytest.raises(OSError):
        package_module.write(package_module.Package({"b.yaml": "new\n"}), target)
    assert sorted(p.name for p in target.iterdir()) == ["a.yaml"]
    assert not [p for p in repo.iterdir() if p.name.startswith(".out.")]


def test_output_is_byte_identical_across_hash_seeds_and_directories(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outputs = []
    for seed, cwd in (("1", repo), ("2", repo / "notebooks")):
        out = tmp_path_factory.mktemp(f"seed{seed}")
        config = repo / "notebooks" / "digits" / "kale.yaml"
        subprocess.run(
            [sys.executable, "-m", "kfg", "render", str(config), "-o", str(out / "pkg")],
            cwd=cwd,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        pkg = out / "pkg"
        outputs.append(
            {p.relative_to(pkg).as_posix(): p.read_bytes() for p in pkg.rglob("*") if p.is_file()}
        )
    assert outputs[0] == outputs[1]


def test_graph_formats(repo: Path) -> None:
    text = kfg("graph", "notebooks/digits/kale.yaml", cwd=repo)
    assert text.returncode == 0, text.stderr
    assert "    <- load: X_val, y_val" in text.stdout
    mermaid = kfg("graph", "notebooks/digits/kale.yaml", "--format", "mermaid", cwd=repo)
    assert mermaid.stdout.startswith("flowchart TD\n")
    dot = kfg("graph", "notebooks/digits/kale.yaml", "-f", "dot", cwd=repo)
    assert '"train" -> "evaluate" [label="model"];' in dot.stdout


def test_graph_of_invalid_config_exits_1(repo: Path) -> None:
    kale = repo / "notebooks" / "digits" / "kale.yaml"
    kale.write_text(kale.read_text().replace('cells: ["id:evaluate"]', "cells: [99]"))
    result = kfg("graph", str(kale), cwd=repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_validate_reports_data_flow_errors_without_calling_the_file_valid(repo: Path) -> None:
    notebook = repo / "notebooks" / "wine" / "wine.ipynb"
    notebook.write_text(
        notebook.read_text().replace("acc_bayes, acc_tree]", "acc_bayes, acc_typo]")
    )
    result = kfg("validate", "notebooks/wine", cwd=repo)
    assert result.returncode == 1
    assert (
        "step `results`: cell 22, line 4: `acc_typo` is read before any step defines it"
        in result.stdout
    )
    assert "valid: pipeline" not in result.stdout


def test_two_configs_cannot_render_the_same_pipeline_name(repo: Path) -> None:
    kale = repo / "notebooks" / "digits" / "kale.yaml"
    kale.write_text(kale.read_text().replace("name: digits-mlp", "name: wine-quality"))
    result = kfg("render", cwd=repo)
    assert result.returncode == 1
    assert "pipeline `wine-quality` is also defined by" in result.stderr
    # One render path: validate finds the same problem, on the second file's name line.
    validated = kfg("validate", cwd=repo)
    assert validated.returncode == 1
    line = kale.read_text().splitlines().index("  name: wine-quality") + 1
    assert f"kale.yaml:{line}:" in validated.stdout
    assert "pipeline `wine-quality` is also defined by" in validated.stdout


def test_launcher_image_from_the_command_line(repo: Path) -> None:
    result = kfg(
        "render",
        "notebooks/digits/kale.yaml",
        "-o",
        "out",
        "--launcher-image",
        "reg.io/kfg:9",
        cwd=repo,
    )
    assert result.returncode == 0, result.stderr
    experiment = yaml.safe_load(
        (repo / "out" / "release" / "experiment.yaml").read_text().split("---", 1)[1]
    )
    container = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "reg.io/kfg:9"


def test_aggregate_output_does_not_depend_on_the_working_directory(repo: Path) -> None:
    assert kfg("render", "notebooks", "-o", "deploy", cwd=repo).returncode == 0
    check = kfg("render", ".", "-o", "../deploy", "--check", cwd=repo / "notebooks")
    assert check.returncode == 0, check.stdout
    header = (repo / "deploy" / "kustomization.yaml").read_text().splitlines()[0]
    assert header.startswith("# Generated by kfg render from notebooks.")


def test_two_pipelines_cannot_render_the_same_snapshot(repo: Path) -> None:
    volume = (
        "  volumes:\n"
        "    - {name: data, claim: shared, mountPath: /data, snapshot: {version: v1, size: 1Gi}}\n"
    )
    for name in ("wine", "digits"):
        kale = repo / "notebooks" / name / "kale.yaml"
        kale.write_text(kale.read_text() + volume)
    result = kfg("render", cwd=repo)
    assert result.returncode == 1
    assert "renders VolumeSnapshot `shared-v1`, as" in result.stderr


@pytest.mark.parametrize("output", [".", "notebooks", "notebooks/wine"])
def test_force_never_replaces_a_directory_holding_the_inputs(repo: Path, output: str) -> None:
    """--force replaces kfg's own output, never an ancestor of what it renders: that would
    delete the kale.yaml, its notebook and the repository's history."""
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", output, "--force", cwd=repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refusing to replace" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before


def test_force_never_replaces_a_directory_holding_the_notebook(repo: Path) -> None:
    """The notebook may live apart from its kale.yaml; --force must not delete it either."""
    wine = repo / "notebooks" / "wine"
    (repo / "nbs").mkdir()
    (wine / "wine.ipynb").rename(repo / "nbs" / "wine.ipynb")
    kale = wine / "kale.yaml"
    kale.write_text(
        kale.read_text().replace("notebook: wine.ipynb", "notebook: ../../nbs/wine.ipynb")
    )
    assert kfg("validate", "notebooks/wine/kale.yaml", cwd=repo).returncode == 0
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", "nbs", "--force", cwd=repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refusing to replace nbs: it contains" in result.stderr
    assert (repo / "nbs" / "wine.ipynb").is_file()


@pytest.mark.parametrize("name", ["pipeline", "release"])
def test_a_pipeline_named_after_a_stage_cannot_join_others(repo: Path, name: str) -> None:
    kale = repo / "notebooks" / "wine" / "kale.yaml"
    kale.write_text(kale.read_text().replace("name: wine-quality", f"name: {name}", 1))
    result = kfg("render", "notebooks", "-o", "deploy", cwd=repo)
    assert result.returncode == 1
    assert "notebooks/wine/kale.yaml:5:9: error: a pipeline named" in result.stderr
    assert not (repo / "deploy").exists()
    alone = kfg("render", "notebooks/wine/kale.yaml", "-o", "deploy/one", cwd=repo)
    assert alone.returncode == 0, alone.stderr


def test_force_never_replaces_a_git_repository(repo: Path) -> None:
    other = repo / "elsewhere"
    (other / "sub" / ".git").mkdir(parents=True)
    (other / "sub" / "file.txt").write_text("mine\n")
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", "elsewhere", "--force", cwd=repo)
    assert result.returncode == 1
    assert "holds a git repository" in result.stderr
    assert (other / "sub" / "file.txt").read_text() == "mine\n"


def test_one_kale_yaml_given_twice_is_one_pipeline(repo: Path) -> None:
    """It was reported as defining its own name twice (duplicate-pipeline)."""
    config = "notebooks/wine/kale.yaml"
    result = kfg("render", config, config, "notebooks/wine", "--stdout", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "duplicate-pipeline" not in result.stderr


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("notes.txt", "notes.txt exists and is not a directory"),
        ("notes.txt/deploy/wine", "notes.txt is a file, so notes.txt/deploy/wine cannot be"),
    ],
)
def test_an_output_that_is_or_lies_under_a_file_is_refused_saying_so(
    repo: Path, output: str, message: str
) -> None:
    (repo / "notes.txt").write_text("mine\n")
    result = kfg("render", "notebooks/wine/kale.yaml", "-o", output, cwd=repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (repo / "notes.txt").read_text() == "mine\n"

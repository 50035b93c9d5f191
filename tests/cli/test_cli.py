"""The command line: exit codes, output formats, and no tracebacks on any input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kfg.cli.app import app
from tests.conftest import EXAMPLES, REPO
from tests.notebooks import KALE_METADATA, KALE_TITANIC, write_notebook

runner = CliRunner()


def kfg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )


def test_validate_examples() -> None:
    result = kfg("validate", "examples")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "examples/wine/kale.yaml: valid: pipeline `wine-quality`" in result.stdout
    assert "8 steps with default requests (cpu 100m, memory 256Mi)" in result.stdout
    assert result.stdout.strip().endswith("2 files valid")


def test_validate_does_not_import_kfp_or_nbformat() -> None:
    code = (
        "import sys; from kfg.cli.app import app\n"
        "try:\n    app(['validate', 'examples'])\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
        # the step runtime (about 40 ms) only for cells with IPython syntax: none here
        "bad = [m for m in ('kfp', 'nbformat', 'kubernetes', 'kfg.runtime.step') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_invalid_file_exits_1_with_positioned_messages(wine: Path) -> None:
    wine.write_text(wine.read_text().replace("resources: {cpu", "resource: {cpu"))
    result = runner.invoke(app, ["validate", str(wine)])
    assert result.exit_code == 1
    assert (
        "kale.yaml:27:7: error: unknown key `resource`; did you mean `resources`?" in result.output
    )


def test_strict_turns_warnings_into_errors(wine: Path) -> None:
    wine.write_text(wine.read_text().replace('skip: ["8-9"]', "skip: [9]"))
    assert runner.invoke(app, ["validate", str(wine)]).exit_code == 0
    strict = runner.invoke(app, ["validate", "--strict", str(wine)])
    assert strict.exit_code == 1
    assert "error: code cell 8" in strict.output


def test_json_format(wine: Path) -> None:
    wine.write_text(wine.read_text().replace("cells: [7]", "cells: [70]"))
    result = runner.invoke(app, ["validate", "--format", "json", str(wine)])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["valid"] is False and payload["errors"] == 1
    (d,) = [d for d in payload["diagnostics"] if d["severity"] == "error"]
    assert (d["code"], d["line"], d["field"]) == ("bad-cell-ref", 18, "spec.steps[0].cells[0]")


def test_github_format_escapes_workflow_commands(wine: Path) -> None:
    wine.write_text(wine.read_text().replace("cells: [7]", "cells: [70]"))
    result = runner.invoke(app, ["validate", "--format", "github", str(wine)])
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("::error "))
    assert (
        line.startswith("::error file=")
        and ",line=18,col=15,title=kfg bad-cell-ref::cell 70 is out of range" in line
    )


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--format", "xml", "examples"],
        ["validate", "does-not-exist"],
        ["cells"],
        ["nope"],
        ["init", "missing.ipynb"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_validate_with_no_kale_yaml_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no kale.yaml found" in result.output


HOSTILE = {
    "alias-bomb.yaml": "a: &a [x,x,x,x,x,x,x,x,x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(12)
    ),
    "deep.yaml": "[" * 200_000,
    "binary.yaml": "\x00\x01\x02 \x89PNG",
    "huge.yaml": "a: " + "x" * (2 << 20),
    "list.yaml": "- 1\n- 2\n",
    "scalar.yaml": "hello",
    "tabs.yaml": "spec:\n\tsteps: []\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_refused_without_a_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / "kale.yaml"
    path.write_bytes(
        HOSTILE[name].encode("utf-8", "surrogatepass")
        if name != "binary.yaml"
        else b"\xff\xfe\x00bad"
    )
    result = kfg("validate", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{path.name}:" in result.stdout
    assert " error: " in result.stdout


def test_cells_lists_steps_from_the_kale_yaml_beside_the_notebook() -> None:
    result = kfg("cells", "examples/wine/wine.ipynb")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "id", "type", "tags", "step", "first", "line"]
    row = next(line for line in lines if line.lstrip().startswith("17 "))
    assert row.split()[:4] == ["17", "random-forest", "code", "random-forest"]


def test_cells_json_and_without_config(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "n.ipynb", [("md", "# t"), ("code", "x = 1", ["a", "b"])])
    result = runner.invoke(app, ["cells", "--json", str(nb)])
    assert result.exit_code == 0
    assert json.loads(result.stdout)[1] == {
        "position": 2,
        "id": "c2",
        "type": "code",
        "tags": "a,b",
        "step": "",
        "first_line": "x = 1",
    }


def test_cells_still_lists_when_the_kale_yaml_is_broken(wine: Path) -> None:
    wine.write_text(wine.read_text().replace("cells: [7]", "cells: [70]"))
    result = runner.invoke(app, ["cells", str(wine)])
    assert result.exit_code == 0
    assert "has 1 error(s)" in result.stderr
    assert "random-forest" in result.stdout


def test_cells_of_a_non_notebook_exits_1(tmp_path: Path) -> None:
    (tmp_path / "x.ipynb").write_text("{")
    result = runner.invoke(app, ["cells", str(tmp_path / "x.ipynb")])
    assert result.exit_code == 1 and "not a notebook" in result.stderr


def test_init_writes_a_valid_kale_yaml_with_the_modeline_and_never_overwrites(
    tmp_path: Path,
) -> None:
    (tmp_path / ".git").mkdir()
    nb = write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA)
    first = runner.invoke(app, ["init", str(nb)])
    assert first.exit_code == 0, first.output
    text = (tmp_path / "kale.yaml").read_text()
    assert text.startswith(
        "# yaml-language-server: $schema=https://kfg.dev/schemas/kale.v1alpha1.schema.json\n"
    )
    assert runner.invoke(app, ["validate", str(tmp_path / "kale.yaml")]).exit_code == 0
    (tmp_path / "kale.yaml").write_text("mine")
    again = runner.invoke(app, ["init", str(nb)])
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert (tmp_path / "kale.yaml").read_text() == "mine"
    assert runner.invoke(app, ["init", "--force", str(nb)]).exit_code == 0
    assert (tmp_path / "kale.yaml").read_text() == text


def test_an_invalid_proposal_is_printed_so_its_line_numbers_can_be_followed(
    tmp_path: Path,
) -> None:
    (tmp_path / ".git").mkdir()
    nb = write_notebook(tmp_path / "n.ipynb", [("code", "y = undefined_name + 1")])
    result = runner.invoke(app, ["init", str(nb)])
    assert result.exit_code == 1
    assert not (tmp_path / "kale.yaml").exists()
    assert result.stdout.startswith("# yaml-language-server:")
    assert "the proposal is on stdout" in result.stderr
    line = int(result.stderr.split("kale.yaml:")[1].split(":")[0])
    assert "cells:" in result.stdout.splitlines()[line - 1]


def test_init_anchors_cells_by_id_and_records_fingerprints(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    nb = write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA)
    assert runner.invoke(app, ["init", str(nb)]).exit_code == 0
    text = (tmp_path / "kale.yaml").read_text()
    assert "prelude: ['id:c2..id:c3']" in text
    assert '  cellHashes:\n    c2: "' in text
    assert not re.search(r"cells: \[\d", text)


def test_init_without_cell_ids_says_so_and_uses_positions(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    nb = write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA, minor=4)
    result = runner.invoke(app, ["init", str(nb)])
    assert result.exit_code == 0, result.output
    assert "has no cell ids (nbformat 4.4)" in result.stderr
    text = (tmp_path / "kale.yaml").read_text()
    assert "prelude: [2-3]" in text and '    "2": "' in text


def test_init_writes_kale_yaml_with_the_users_umask(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    nb = write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA)
    previous = os.umask(0o022)
    try:
        assert runner.invoke(app, ["init", str(nb)]).exit_code == 0
        assert (tmp_path / "kale.yaml").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        os.umask(0o027)
        assert runner.invoke(app, ["init", str(nb), "-o", str(tmp_path / "b.yaml")]).exit_code == 0
        assert (tmp_path / "b.yaml").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


def test_init_uses_a_relative_schema_path_inside_the_kfg_repository(tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "kale.yaml"
    shutil.copy(EXAMPLES / "digits" / "digits.ipynb", tmp_path / "digits.ipynb")
    schema = REPO / "schemas" / "kale.schema.json"
    result = runner.invoke(
        app, ["init", str(tmp_path / "digits.ipynb"), "-o", str(target), "--schema", str(schema)]
    )
    assert result.exit_code == 0, result.output
    first = target.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=") and first.endswith(
        "schemas/kale.schema.json"
    )


def test_init_refuses_to_write_an_invalid_proposal(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "empty.ipynb", [("md", "# nothing to run")])
    result = runner.invoke(app, ["init", str(nb)])
    assert result.exit_code == 1
    assert "was not written" in result.stderr
    assert not (tmp_path / "kale.yaml").exists()
    assert not list(tmp_path.glob(".kale.yaml.*"))


def test_schema_command_prints_and_writes(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["schema"])
    assert json.loads(printed.stdout)["$id"].endswith("kale.v1alpha1.schema.json")
    assert runner.invoke(app, ["schema", "-o", str(tmp_path / "s.json")]).exit_code == 0
    assert (tmp_path / "s.json").read_text() == (REPO / "schemas" / "kale.schema.json").read_text()


def test_version() -> None:
    assert runner.invoke(app, ["--version"]).stdout.startswith("kfg ")

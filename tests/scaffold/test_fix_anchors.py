"""Editing a notebook under its kale.yaml: what each step runs, before and after.

Each scenario renders every step's component (kfg/render/components.py) before and after the
edit and compares the code, not just the exit status. The component's docstring names cell
positions, which legitimately change, so it is left out of the comparison.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kfg.cli.app import app
from kfg.core.load import LoadResult, load_pipeline
from kfg.render.components import build_component
from kfg.scaffold.fix import fix_file

# (id, type, source); ids are stable names, as Jupyter's random ones would be.
Cell = tuple[str, str, str]

BASE: list[Cell] = [
    ("m1", "markdown", "# Demo"),
    ("imp", "code", "import math"),
    ("par", "code", "n = 3"),
    ("load1", "code", "data = list(range(n))"),
    ("loadmid", "code", "data = [d * 2 for d in data]"),
    ("load2", "code", "data = data[1:]"),
    ("peek", "code", "len(data)"),
    ("m2", "markdown", "## Train"),
    ("train", "code", "total = sum(data)"),
    ("explore", "code", "print(total)"),
    ("res1", "code", "root = math.sqrt(total)"),
    ("res2", "code", "result = root + 1"),
]

POSITIONAL = """\
# The demo pipeline.
apiVersion: kfg.dev/v1alpha1
kind: NotebookPipeline
metadata:
  name: demo   # kept as is
spec:
  notebook: demo.ipynb
  prelude: [2]          # imports
  skip: [10]            # exploration
  parameters: {cell: 3}
  steps:
    # Loading comes first.
    - name: load
      cells: ["4-6"]    # three cells
    - name: train
      cells:
        - 9
    - name: report
      cells: ["11-12"]
      timeout: 5m
"""


def write_nb(path: Path, cells: list[Cell], *, ids: bool = True) -> None:
    out = []
    for cell_id, kind, source in cells:
        item: dict[str, object] = {"cell_type": kind, "metadata": {}, "source": source}
        if ids:
            item["id"] = cell_id
        if kind == "code":
            item.update(execution_count=None, outputs=[])
        out.append(item)
    book = {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5 if ids else 4}
    path.write_text(json.dumps(book, indent=1), encoding="utf-8")


def step_code(result: LoadResult) -> dict[str, str]:
    """Each step's rendered component source, without the docstring naming positions."""
    assert result.pipeline is not None and result.flow is not None and result.notebook
    out = {}
    for step in result.pipeline.steps:
        source = build_component(result.pipeline, result.flow, result.notebook, step).source
        out[step.name] = re.sub(
            r"^(\s+)\(\d+, ",
            r"\1(N, ",
            "\n".join(x for x in source.splitlines() if not x.lstrip().startswith('"""Step')),
            flags=re.MULTILINE,
        )
    return out


def code_of(result: LoadResult, step: str) -> list[str]:
    """The sources of the cells a step runs, in order."""
    assert result.pipeline is not None and result.notebook is not None
    cells = next(s.cells for s in result.pipeline.steps if s.name == step)
    return [result.notebook.cell(p).source for p in cells]


def codes(result: LoadResult) -> list[str]:
    return [d.code for d in result.diagnostics]


def setup(tmp_path: Path, *, ids: bool, anchor_ids: bool, nb_ids: bool = True) -> Path:
    """A kale.yaml with fingerprints recorded by `kfg fix --write` (and ids if asked)."""
    (tmp_path / ".git").mkdir(exist_ok=True)
    write_nb(tmp_path / "demo.ipynb", BASE, ids=nb_ids)
    config = tmp_path / "kale.yaml"
    config.write_text(POSITIONAL, encoding="utf-8")
    fixed = fix_file(config, ids=anchor_ids)
    config.write_text(fixed.fixed, encoding="utf-8")
    return config


def edit(tmp_path: Path, cells: list[Cell], *, ids: bool = True) -> None:
    write_nb(tmp_path / "demo.ipynb", cells, ids=ids)


def test_fix_records_fingerprints_and_ids(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=True, anchor_ids=True)
    text = config.read_text()
    assert 'cells: ["id:load1..id:load2"]  # three cells' in text
    assert 'prelude: ["id:imp"]   # imports' in text
    assert '  cellHashes:\n    imp: "' in text
    result = load_pipeline(config)
    assert result.ok, result.diagnostics
    # peek belongs to no step: reported once, with the step it most likely belongs to.
    (peek,) = [d for d in result.diagnostics if d.code == "unassigned-cell"]
    assert "code cell 7 (`len(data)`)" in peek.message
    assert "most likely belongs to step `load` (it reads `data` from step `load`)" in peek.message


def test_insertion_at_the_top_with_ids_changes_nothing(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=True, anchor_ids=True)
    before = step_code(load_pipeline(config))
    edit(tmp_path, [("top", "code", "import os"), *BASE])
    after = load_pipeline(config)
    assert after.ok
    assert "cells-moved" not in codes(after)
    assert step_code(after) == before


def test_insertion_at_the_top_with_positions_is_explained_and_followed(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=False, anchor_ids=False)
    before = step_code(load_pipeline(config))
    edit(tmp_path, [("top", "code", "import os"), *BASE])
    after = load_pipeline(config)
    moved = [d for d in after.diagnostics if d.code == "cells-moved"]
    assert len(moved) == 1
    assert moved[0].message.startswith(
        # Cell 1 (markdown) has no fingerprint, so the place is known to be above cell 3.
        "cells moved in demo.ipynb: a cell was inserted above cell 3;"
        " step `load` referred to cells 4-6, which are now 5-7;"
        " step `train` referred to cell 9, which is now cell 10; 4 more;"
        " run `kfg fix --write`"
    )
    # One explanation, not a cascade: every other finding is about the new cell only.
    assert sorted(codes(after)) == ["cells-moved", "unassigned-cell", "unassigned-cell"]
    # `kfg fix --write` follows the notebook; the steps run exactly what they ran before.
    config.write_text(fix_file(config).fixed, encoding="utf-8")
    fixed = load_pipeline(config)
    assert fixed.ok, fixed.diagnostics
    assert step_code(fixed) == before
    assert 'cells: ["5-7"]    # three cells' in config.read_text()


def test_insertion_in_the_middle_of_a_range_runs_in_that_step_and_warns_once(
    tmp_path: Path,
) -> None:
    config = setup(tmp_path, ids=True, anchor_ids=True)
    before = load_pipeline(config)
    cells = list(BASE)
    cells.insert(5, ("new", "code", "data = sorted(data)"))
    edit(tmp_path, cells)
    after = load_pipeline(config)
    assert after.ok
    warned = [d for d in after.diagnostics if d.code == "new-cell-in-range"]
    assert len(warned) == 1
    assert "cell 6 (`data = sorted(data)`) is new inside `id:load1..id:load2`" in warned[0].message
    assert code_of(after, "load") == [
        *code_of(before, "load")[:2],
        "data = sorted(data)",
        code_of(before, "load")[2],
    ]
    others = {k: v for k, v in step_code(after).items() if k != "load"}
    assert others == {k: v for k, v in step_code(before).items() if k != "load"}
    # Recorded by `kfg fix --write`: the warning is given once, not on every validate.
    config.write_text(fix_file(config).fixed, encoding="utf-8")
    assert "new-cell-in-range" not in codes(load_pipeline(config))


def test_insertion_in_a_positional_range_is_followed(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=False, anchor_ids=False)
    cells = list(BASE)
    cells.insert(5, ("new", "code", "data = sorted(data)"))
    edit(tmp_path, cells)
    after = load_pipeline(config)
    assert "cells-moved" in codes(after)
    assert codes(after).count("new-cell-in-range") == 1
    assert code_of_map(after, "load") == [
        "data = list(range(n))",
        "data = [d * 2 for d in data]",
        "data = sorted(data)",
        "data = data[1:]",
    ]


def code_of_map(result: LoadResult, step: str) -> list[str]:
    """A step's cells from the cell map (the pipeline is not built while errors stand)."""
    assert result.cellmap is not None and result.notebook is not None
    return [result.notebook.cell(p).source for p in result.cellmap.sections[f"step:{step}"]]


def test_insertion_between_steps(tmp_path: Path) -> None:
    for anchor_ids in (True, False):
        config = setup(tmp_path, ids=anchor_ids, anchor_ids=anchor_ids)
        before = step_code(load_pipeline(config))
        cells = list(BASE)
        cells.insert(8, ("between", "code", "scale = 2"))  # after `## Train`, before train
        edit(tmp_path, cells)
        after = load_pipeline(config)
        unassigned = [d for d in after.diagnostics if d.code == "unassigned-cell"]
        assert any("code cell 9 (`scale = 2`)" in d.message for d in unassigned)
        if anchor_ids:
            assert after.ok
            assert step_code(after) == before
        else:
            assert "a cell was inserted between cell 6 and cell 10" in next(
                d.message for d in after.diagnostics if d.code == "cells-moved"
            )
            config.write_text(fix_file(config).fixed, encoding="utf-8")
            assert step_code(load_pipeline(config)) == before
        edit(tmp_path, BASE)


def test_deleting_an_unassigned_cell(tmp_path: Path) -> None:
    for anchor_ids in (True, False):
        config = setup(tmp_path, ids=anchor_ids, anchor_ids=anchor_ids)
        before = step_code(load_pipeline(config))
        edit(tmp_path, [c for c in BASE if c[0] != "peek"])
        after = load_pipeline(config)
        if anchor_ids:
            assert after.ok and "unassigned-cell" not in codes(after)
            assert step_code(after) == before
        else:
            moved = next(d.message for d in after.diagnostics if d.code == "cells-moved")
            assert "a cell was deleted after cell 6" in moved
            assert "step `train` referred to cell 9, which is now cell 8" in moved
            config.write_text(fix_file(config).fixed, encoding="utf-8")
            assert step_code(load_pipeline(config)) == before
        edit(tmp_path, BASE)


def test_reordering_two_unrelated_cells_changes_nothing(tmp_path: Path) -> None:
    for anchor_ids in (True, False):
        config = setup(tmp_path, ids=anchor_ids, anchor_ids=anchor_ids)
        before = load_pipeline(config)
        cells = list(BASE)
        cells[6], cells[7] = cells[7], cells[6]  # `len(data)` and `## Train`
        edit(tmp_path, cells)
        after = load_pipeline(config)
        assert after.ok and "cells-moved" not in codes(after)
        assert step_code(after) == step_code(before)
        edit(tmp_path, BASE)


def test_a_cell_moved_from_one_step_to_another(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=True, anchor_ids=True)
    before = load_pipeline(config)
    cells = [c for c in BASE if c[0] != "loadmid"]
    at = next(i for i, c in enumerate(cells) if c[0] == "res2")
    cells.insert(at, next(c for c in BASE if c[0] == "loadmid"))
    edit(tmp_path, cells)
    after = load_pipeline(config)
    assert code_of(after, "load") == ["data = list(range(n))", "data = data[1:]"]
    assert code_of(after, "report") == [
        "root = math.sqrt(total)",
        "data = [d * 2 for d in data]",
        "result = root + 1",
    ]
    assert code_of(after, "train") == code_of(before, "train")
    warned = [d for d in after.diagnostics if d.code == "new-cell-in-range"]
    assert len(warned) == 1 and "step `report` runs it" in warned[0].message


def test_a_notebook_without_ids_keeps_positions_with_fingerprints(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_nb(tmp_path / "demo.ipynb", BASE, ids=False)
    config = tmp_path / "kale.yaml"
    config.write_text(POSITIONAL, encoding="utf-8")
    fixed = fix_file(config, ids=True)
    assert any("has no cell ids (nbformat 4.4)" in n for n in fixed.notes)
    assert '"id:' not in fixed.fixed and '    "4": "' in fixed.fixed
    config.write_text(fixed.fixed, encoding="utf-8")
    before = step_code(load_pipeline(config))
    edit(tmp_path, [("top", "code", "import os"), *BASE], ids=False)
    after = load_pipeline(config)
    assert "a cell was inserted above cell 3" in next(
        d.message for d in after.diagnostics if d.code == "cells-moved"
    )
    config.write_text(fix_file(config).fixed, encoding="utf-8")
    assert step_code(load_pipeline(config)) == before


def test_fix_keeps_everything_it_does_not_change_byte_for_byte(tmp_path: Path) -> None:
    config = setup(tmp_path, ids=False, anchor_ids=False)
    original = POSITIONAL
    text = fix_file(tmp_path / "kale.yaml", ids=True).fixed
    config.write_text(text, encoding="utf-8")
    matcher = difflib.SequenceMatcher(a=original.splitlines(), b=text.splitlines())
    changed = [
        line
        for tag, i1, i2, _, _ in matcher.get_opcodes()
        if tag != "equal"
        for line in original.splitlines()[i1:i2]
    ]
    # Only the references changed; every comment and every other line is as it was.
    assert changed == [
        "  prelude: [2]          # imports",
        "  skip: [10]            # exploration",
        "  parameters: {cell: 3}",
        '      cells: ["4-6"]    # three cells',
        "        - 9",
        '      cells: ["11-12"]',
    ]
    assert '        - "id:train"\n' in text
    assert load_pipeline(config).ok
    # A second run with nothing to do changes nothing at all.
    assert fix_file(config, ids=True).fixed == text


def test_cli_fix_shows_a_diff_writes_only_with_write_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = setup(tmp_path, ids=False, anchor_ids=False)
    recorded = config.read_text()
    edit(tmp_path, [("top", "code", "import os"), *BASE])
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    config = Path("kale.yaml")
    shown = runner.invoke(app, ["fix", str(config)])
    assert shown.exit_code == 0
    assert '-      cells: ["4-6"]    # three cells' in shown.stdout
    assert '+      cells: ["5-7"]    # three cells' in shown.stdout
    assert config.read_text() == recorded
    checked = runner.invoke(app, ["fix", "--check", str(config)])
    assert checked.exit_code == 1
    assert "a cell was inserted above cell 3" in checked.stderr
    assert f"run `kfg fix --write {config}`" in checked.stderr
    written = runner.invoke(app, ["fix", "--write", str(config)])
    assert written.exit_code == 0
    assert runner.invoke(app, ["fix", "--check", str(config)]).exit_code == 0


def test_render_and_run_report_the_same_explanation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(tmp_path, ids=False, anchor_ids=False)
    edit(tmp_path, [("top", "code", "import os"), *BASE])
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["render", "kale.yaml", "-o", "out"], ["run", "kale.yaml"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "cells moved in demo.ipynb: a cell was inserted above cell 3" in result.stderr
        assert "run `kfg fix --write`" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_range_whose_cells_were_reordered_is_left_for_the_author(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load2 moved above load1: `4-6` would become `6-4`, a range that selects nothing (and
    that validate refuses). fix says so, exits 1 and writes nothing, not half a fix."""
    config = setup(tmp_path, ids=False, anchor_ids=False)
    recorded = config.read_text()
    load1, loadmid, load2 = BASE[3], BASE[4], BASE[5]
    edit(tmp_path, [*BASE[:3], load2, loadmid, load1, *BASE[6:]])
    result = fix_file(config)
    assert result.problems and "step `load`: cells 4-6" in result.problems[0]
    assert result.fixed == recorded
    monkeypatch.chdir(tmp_path)
    written = CliRunner().invoke(app, ["fix", "--write", "kale.yaml"])
    assert written.exit_code == 1
    assert "cannot follow step `load`" in written.stderr
    assert "left unchanged" in written.stderr
    assert config.read_text() == recorded
    assert "reordered: list its cells by hand" in " ".join(
        d.message for d in load_pipeline(config).diagnostics
    )


def test_anchors_and_tags_on_a_followed_reference_stay(tmp_path: Path) -> None:
    """Only the value changes: an anchor an alias elsewhere may use, and a tag, are kept."""
    (tmp_path / ".git").mkdir()
    write_nb(tmp_path / "demo.ipynb", BASE)
    config = tmp_path / "kale.yaml"
    text = POSITIONAL.replace('cells: ["4-6"]', 'cells: &loading ["4-6"]').replace(
        "parameters: {cell: 3}", "parameters: {cell: !!int 3}"
    )
    config.write_text(text, encoding="utf-8")
    config.write_text(fix_file(config).fixed, encoding="utf-8")
    edit(tmp_path, [("top", "code", "import os"), *BASE])
    fixed = fix_file(config).fixed
    assert 'cells: &loading ["5-7"]' in fixed
    assert "parameters: {cell: !!int 4}" in fixed

"""The KRM function, fed real ResourceLists: golden outputs, comments kept, results, exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import crds
from tests.conftest import REPO

EXAMPLES = REPO / "functions" / "render" / "examples"
EXIT = {"tiny": 0, "invalid": 1}


def run(example: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "fn", "render"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=example,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(EXIT))
def test_golden_output(name: str) -> None:
    """Set KFG_UPDATE_GOLDEN=1 to rewrite expected-output.yaml after an intended change."""
    example = EXAMPLES / name
    result = run(example, (example / "input.yaml").read_text())
    assert result.returncode == EXIT[name], result.stderr
    expected = example / "expected-output.yaml"
    if os.environ.get("KFG_UPDATE_GOLDEN"):
        expected.write_text(result.stdout)
    assert result.stdout == expected.read_text()


def test_rendered_items_are_placed_and_valid() -> None:
    example = EXAMPLES / "tiny"
    output = yaml.safe_load(run(example, (example / "input.yaml").read_text()).stdout)
    kinds = [item["kind"] for item in output["items"]]
    assert kinds == ["NotebookPipeline", "ConfigMap", "Pipeline", "ConfigMap", "PipelineVersion"]
    where = {
        "ConfigMap": "pipeline/runtime.yaml",  # the step runtime, mounted by every step
        "Pipeline": "pipeline/pipeline.yaml",
        "PipelineVersion": "release/version.yaml",
    }
    for item in output["items"][2:]:
        annotations = item["metadata"]["annotations"]
        path = f"rendered/tiny/{where[item['kind']]}"
        assert annotations["internal.config.kubernetes.io/path"] == path
        crds.validate(item)
    # The stages' kustomizations are package files kpt keeps to itself, as the top one.
    assert not [i for i in output["items"] if i["kind"] == "Kustomization"]
    assert "results" not in output


def test_comments_of_passed_through_items_are_kept() -> None:
    example = EXAMPLES / "tiny"
    text = run(example, (example / "input.yaml").read_text()).stdout
    assert "name: team-settings  # who owns this pipeline" in text
    assert "owner: data-science  # the team to page" in text


def test_rendering_twice_replaces_rather_than_duplicates() -> None:
    example = EXAMPLES / "tiny"
    once = run(example, (example / "input.yaml").read_text()).stdout
    twice = yaml.safe_load(run(example, once).stdout)
    assert [i["kind"] for i in twice["items"]].count("PipelineVersion") == 1


def test_results_carry_file_field_and_severity() -> None:
    example = EXAMPLES / "invalid"
    output = yaml.safe_load(run(example, (example / "input.yaml").read_text()).stdout)
    first = next(r for r in output["results"] if r["severity"] == "error")
    assert any(r["severity"] == "warning" for r in output["results"])  # the unused cell 4
    assert first["file"] == {"path": "kale.yaml"}
    assert first["field"] == {"path": "spec.steps[1].cells[0]"}
    assert "cell 9 is out of range" in first["message"]


def test_config_map_function_config_and_bad_input(tmp_path: Path) -> None:
    example = EXAMPLES / "tiny"
    listed = (
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n"
        "functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: kfg}\n"
        "  data:\n    paths: kale.yaml\n"
    )
    output = yaml.safe_load(run(example, listed).stdout)
    assert [i["kind"] for i in output["items"]] == ["Pipeline", "ConfigMap", "PipelineVersion"]
    bad = run(example, "not: a resource list\n")
    assert bad.returncode == 1
    assert "must be a config.kubernetes.io/v1 ResourceList" in bad.stdout


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [
        ("a: " + "x" * (9 << 20), "larger than 8 MiB"),
        ("[" * 100 + "]" * 100, "nested deeper than 64"),
        ("- 1\n" * 1_000_001, "more than 1000000 YAML nodes"),
    ],
    ids=["huge", "deep", "many-nodes"],
)
def test_a_hostile_resource_list_is_refused_quickly(stdin: str, reason: str) -> None:
    result = run(EXAMPLES / "tiny", stdin)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    output = yaml.safe_load(result.stdout)
    assert reason in output["results"][0]["message"]


def test_the_function_works_on_the_item_it_receives_not_the_file_on_disk() -> None:
    """KRM functions specification: the input ResourceList is the truth. An upstream
    function renamed a step to something invalid; the file on disk still has `total`."""
    example = EXAMPLES / "tiny"
    text = (example / "input.yaml").read_text()
    assert "      - name: total\n" in text
    mutated = run(example, text.replace("      - name: total\n", "      - name: Total_Step\n"))
    assert mutated.returncode == 1
    output = yaml.safe_load(mutated.stdout)
    assert any("Total_Step" in r["message"] for r in output["results"])
    assert not any(i["kind"] == "PipelineVersion" for i in output["items"])


def test_an_inline_function_config_is_rendered_as_given() -> None:
    example = EXAMPLES / "tiny"
    config = (example / "kale.yaml").read_text().replace("name: tiny", "name: tiny-inline", 1)
    indented = "".join(f"  {line}\n" for line in config.splitlines())
    stdin = (
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig:\n"
        + indented
    )
    result = run(example, stdin)
    assert result.returncode == 0, result.stdout
    names = {
        i["metadata"]["name"]
        for i in yaml.safe_load(result.stdout)["items"]
        if i["kind"] == "Pipeline"
    }
    assert names == {"tiny-inline"}


def test_items_alone_are_enough_without_a_function_config() -> None:
    """`kpt fn eval . --exec "kfg fn render"` passes the package's resources as items and no
    functionConfig: the NotebookPipeline items are found by themselves."""
    example = EXAMPLES / "tiny"
    text = (example / "input.yaml").read_text()
    assert "functionConfig" not in text
    result = run(example, text)
    assert result.returncode == 0
    kinds = [i["kind"] for i in yaml.safe_load(result.stdout)["items"]]
    assert kinds.count("Pipeline") == 1 and "PipelineVersion" in kinds


def test_two_items_defining_one_pipeline_render_nothing_twice(tmp_path: Path) -> None:
    example = EXAMPLES / "tiny"
    text = (example / "input.yaml").read_text()
    first = text[text.index("- apiVersion: kfg.dev/v1alpha1") : text.index("- # A ConfigMap")]
    second = first.replace(
        "internal.config.kubernetes.io/path: kale.yaml",
        "internal.config.kubernetes.io/path: other/kale.yaml",
    )
    (tmp_path / "other").mkdir()
    shutil.copy(example / "tiny.ipynb", tmp_path / "other" / "tiny.ipynb")
    shutil.copy(example / "tiny.ipynb", tmp_path / "tiny.ipynb")
    stdin = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n" + first + second
    result = run(tmp_path, stdin)
    assert result.returncode == 1
    output = yaml.safe_load(result.stdout)
    assert any("is also defined by" in r["message"] for r in output["results"])
    assert [i["kind"] for i in output["items"]].count("Pipeline") == 0

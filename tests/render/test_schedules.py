"""Schedules render to CronJobs beside the version they run, valid, pinned and prunable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfg.core.load import load_pipeline
from kfg.render import gitops
from kfg.render.build import SCHEDULES_FILE, Rendered, render
from kfg.render.launcher import RULES
from kfg.render.package import diff, write
from tests import crds
from tests.conftest import EXAMPLES, REPO

GOLDEN = Path(__file__).resolve().parent / "golden" / "scheduled"
SCHEDULED = Path(__file__).resolve().parent / "scheduled" / "kale.yaml"


def _render(config: Path, root: Path = REPO) -> Rendered:
    result = load_pipeline(config, root=root)
    assert result.ok and result.pipeline and result.flow and result.notebook, result.diagnostics
    return render(result.pipeline, result.flow, result.notebook, root)


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return _render(SCHEDULED)


def _kinds(item: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in item.objects if o["kind"] == kind]


def _args(cronjob: dict[str, Any]) -> list[str]:
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_golden_files(rendered: Rendered) -> None:
    """Set KFG_UPDATE_GOLDEN=1 to rewrite them after an intended change, then review the diff."""
    if os.environ.get("KFG_UPDATE_GOLDEN"):
        write(rendered.package, GOLDEN, force=True)
    assert diff(rendered.package, GOLDEN) == ""


def test_rendering_is_deterministic(rendered: Rendered) -> None:
    assert _render(SCHEDULED).package.files == rendered.package.files


def test_one_cronjob_per_schedule_in_the_release_stage(rendered: Rendered) -> None:
    files = rendered.package.files
    documents = [d for d in yaml.safe_load_all(files[SCHEDULES_FILE]) if d]
    assert [d["metadata"]["name"] for d in documents] == [
        "wine-scheduled-nightly",
        "wine-scheduled-weekly-full",
    ]
    assert "schedules.yaml" in yaml.safe_load(files["release/kustomization.yaml"])["resources"]
    nightly, weekly = documents
    assert nightly["spec"]["schedule"] == "0 3 * * *"
    assert nightly["spec"]["timeZone"] == "Europe/Berlin"
    assert nightly["spec"]["concurrencyPolicy"] == "Forbid"
    assert (
        nightly["spec"]["successfulJobsHistoryLimit"],
        nightly["spec"]["failedJobsHistoryLimit"],
    ) == (3, 1)
    assert nightly["spec"]["suspend"] is False
    assert weekly["spec"]["concurrencyPolicy"] == "Replace"
    assert weekly["spec"]["suspend"] is True
    assert (
        weekly["spec"]["successfulJobsHistoryLimit"],
        weekly["spec"]["failedJobsHistoryLimit"],
    ) == (5, 2)
    assert _option(_args(weekly), "--experiment") == ["wine-weekly"]
    # The parameter's own type: `C: 2` in kale.yaml is a float parameter's 2.0.
    assert _option(_args(weekly), "--param") == ["C:float=2.0", "test_size:float=0.2"]
    assert _option(_args(nightly), "--param") == ["max_depth:int=4", "n_estimators:int=50"]


def test_every_object_is_valid_for_kubernetes(rendered: Rendered) -> None:
    for obj in rendered.objects:
        crds.validate(obj)


def test_the_cronjob_runs_the_launcher_like_a_trial(rendered: Rendered) -> None:
    [version] = _kinds(rendered, "PipelineVersion")
    for cronjob in _kinds(rendered, "CronJob"):
        job = cronjob["spec"]["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        assert job["activeDeadlineSeconds"] == 7200 + 600 and job["backoffLimit"] == 0
        assert pod["serviceAccountName"] == "wine-scheduled-launcher"
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert any(v.get("projected") for v in pod["volumes"])  # the KFP token
        args = container["args"]
        assert args[0] == "schedule-run"
        assert _option(args, "--version") == [version["metadata"]["name"]]
        assert _option(args, "--namespace") == ["team-a"]
        env = {e["name"]: e for e in container["env"]}
        # The Job's name, hence the scheduled time, through the downward API.
        assert env["KFG_SCHEDULE_JOB"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.labels['batch.kubernetes.io/job-name']"
        )


def test_the_role_adds_only_listing_runs(rendered: Rendered) -> None:
    # KFP 2.17.0 run_server.go: ListRuns is authorised as `list` on `runs`.
    [role] = _kinds(rendered, "Role")
    runs = next(r for r in role["rules"] if r["resources"] == ["runs"])
    assert runs["verbs"] == ["create", "get", "list", "terminate"]
    others = [r for r in role["rules"] if r["resources"] != ["runs"]]
    assert others == [r for r in RULES if r["resources"] != ["runs"]]


def test_cronjobs_are_pruned_but_versions_are_kept(rendered: Rendered) -> None:
    for cronjob in _kinds(rendered, "CronJob"):
        assert not gitops.is_kept(cronjob)
        annotations = cronjob["metadata"]["annotations"]
        assert gitops.FLUX_PRUNE not in annotations
        assert "Prune=false" not in annotations.get(gitops.ARGOCD_SYNC_OPTIONS, "")
    [version] = _kinds(rendered, "PipelineVersion")
    assert gitops.is_kept(version)


def _copy(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    shutil.copy(EXAMPLES / "wine" / "wine.ipynb", tmp_path / "wine.ipynb")
    text = SCHEDULED.read_text().replace("../../../examples/wine/wine.ipynb", "wine.ipynb")
    (tmp_path / "kale.yaml").write_text(text)
    return tmp_path / "kale.yaml"


def test_a_notebook_change_moves_the_schedules_to_the_new_version(tmp_path: Path) -> None:
    config = _copy(tmp_path)
    before = _render(config, tmp_path)
    notebook = tmp_path / "wine.ipynb"
    notebook.write_text(
        notebook.read_text().replace(
            "max_depth=max_depth, random_state", "max_depth=max_depth + 1, random_state"
        )
    )
    after = _render(config, tmp_path)
    assert after.version != before.version
    old = {c["metadata"]["name"]: c for c in _kinds(before, "CronJob")}
    new = {c["metadata"]["name"]: c for c in _kinds(after, "CronJob")}
    assert old.keys() == new.keys()  # the same CronJobs, updated in place
    for name, cronjob in new.items():
        assert _option(_args(cronjob), "--version") == [after.version]
        assert _option(_args(old[name]), "--version") == [before.version]
    # The old version leaves git but not the cluster: runs started from it keep it.
    [old_version] = _kinds(before, "PipelineVersion")
    assert old_version["metadata"]["name"] == before.version
    assert before.version not in [o["metadata"]["name"] for o in after.objects]
    assert gitops.is_kept(old_version)


def test_removing_the_schedules_removes_their_objects(tmp_path: Path) -> None:
    config = _copy(tmp_path)
    with_schedules = _render(config, tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index("  # Two recurring runs")])
    without = _render(config, tmp_path)
    assert without.version == with_schedules.version  # schedules are not part of the version
    assert not _kinds(without, "CronJob")
    assert SCHEDULES_FILE not in without.package.files
    release = yaml.safe_load(without.package.files["release/kustomization.yaml"])["resources"]
    assert "schedules.yaml" not in release
    # Nothing else asked for the launcher: its ServiceAccount and Role go too.
    assert not _kinds(without, "Role")


def test_steps_receive_exactly_the_scheduled_parameters_they_read(rendered: Rendered) -> None:
    """KFP hands a run's parameter only to the tasks wired to it; a schedule's override
    must therefore reach the steps that read it and no other."""
    [version] = _kinds(rendered, "PipelineVersion")
    tasks = version["spec"]["pipelineSpec"]["root"]["dag"]["tasks"]
    readers: dict[str, set[str]] = {}
    for task, spec in tasks.items():
        for parameter in spec.get("inputs", {}).get("parameters", {}):
            readers.setdefault(parameter, set()).add(task)
    assert readers["n_estimators"] == {"random-forest"}
    assert readers["max_depth"] == {"random-forest", "decision-tree"}
    assert readers["test_size"] == {"features"}
    assert readers["C"] == {"logistic-regression", "svm"}


def test_kubectl_kustomize_builds_the_release_stage_with_its_cronjobs(
    rendered: Rendered, tmp_path: Path
) -> None:
    from tests.render.test_render import _kustomize

    write(rendered.package, tmp_path / "wine")
    built = _kustomize(tmp_path / "wine" / "release")
    assert [o["metadata"]["name"] for o in built if o["kind"] == "CronJob"] == [
        "wine-scheduled-nightly",
        "wine-scheduled-weekly-full",
    ]

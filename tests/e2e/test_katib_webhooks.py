"""Katib's own webhooks accept every rendered Experiment and leave it as kfg wrote it.

Katib v0.19.0's defaulter fills in what an Experiment leaves out and its validator checks
the result (pkg/webhook/v1beta1/experiment). If the defaulter changes or adds anything, the
live object differs from git and Argo CD or Flux show the Experiment out of sync forever;
so the rendered Experiment must already be what Katib would make of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import ApiError, ControlPlane, Process
from tests.e2e.conftest import Repository, kfg, kustomize
from tests.e2e.diffs import added, lost
from tests.e2e.webhooks import KATIB_LABEL

PACKAGES_WITH_TUNING = ["digits-mlp", "full-pipeline"]


def _experiment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [experiment] = [o for o in objects if o["kind"] == "Experiment"]
    return experiment


def _apply(plane: ControlPlane, experiment: dict[str, Any], namespace: str) -> Any:
    # Argo CD's server-side apply manager; Flux's is kustomize-controller.
    return plane.api.apply(experiment, namespace=namespace, manager="argocd-controller")


@pytest.mark.parametrize("package", PACKAGES_WITH_TUNING)
def test_katib_accepts_the_experiment_adds_nothing_and_a_resync_is_a_no_op(
    package: str, control_plane: ControlPlane, katib: Process, rendered: Repository
) -> None:
    namespace = f"katib-{package}"
    control_plane.api.namespace(namespace, KATIB_LABEL)
    experiment = _experiment(rendered.objects(package))
    stored = _apply(control_plane, experiment, namespace)
    defaults = list(added(experiment["spec"], stored["spec"], ".spec"))
    assert not defaults, "Katib's defaulter added:\n" + "\n".join(defaults)
    again = _apply(control_plane, experiment, namespace)
    assert again["metadata"]["generation"] == stored["metadata"]["generation"]


# kubeflow/katib v0.19.0 pkg/webhook/v1beta1/experiment/mutate_webhook.go decodes the
# Experiment into its Go type, defaults it and answers with the JSON patch between the
# request and the re-encoded object, so a field kfg writes with its Go zero value under
# `omitempty` (`retain: false`, `algorithmSettings: []`) is removed from what is stored, and
# Argo CD compares git's value with nothing.
@pytest.mark.parametrize("package", PACKAGES_WITH_TUNING)
def test_katib_changes_nothing_kfg_wrote_so_gitops_sees_no_drift(
    package: str, control_plane: ControlPlane, katib: Process, rendered: Repository
) -> None:
    namespace = f"katib-drift-{package}"
    control_plane.api.namespace(namespace, KATIB_LABEL)
    experiment = _experiment(rendered.objects(package))
    stored = _apply(control_plane, experiment, namespace)
    changed = list(lost(experiment, stored))
    assert not changed, "Katib's defaulter rewrote what kfg rendered:\n" + "\n".join(changed)


def test_katib_refuses_what_its_validator_refuses(
    control_plane: ControlPlane, katib: Process, rendered: Repository
) -> None:
    """The webhooks are really in the path: a broken Experiment is refused by Katib."""
    namespace = "katib-negative"
    control_plane.api.namespace(namespace, KATIB_LABEL)
    experiment = _experiment(rendered.objects("digits-mlp"))
    experiment["spec"]["parallelTrialCount"] = experiment["spec"]["maxTrialCount"] + 1
    with pytest.raises(ApiError, match=r"validator\.experiment\.katib\.kubeflow\.org"):
        _apply(control_plane, experiment, namespace)


def test_a_changed_tuning_spec_is_accepted_over_the_old_experiment(
    control_plane: ControlPlane, katib: Process, rendered: Repository, tmp_path: Path
) -> None:
    """The upgrade story: a new tuning spec rendered over a synced one is accepted (Katib
    refuses most spec changes to an existing Experiment)."""
    namespace = "katib-upgrade"
    control_plane.api.namespace(namespace, KATIB_LABEL)
    before = _experiment(rendered.objects("digits-mlp"))
    _apply(control_plane, before, namespace)

    repo = tmp_path / "repo"
    shutil.copytree(rendered.root, repo, ignore=shutil.ignore_patterns("deploy"))
    kale = repo / "digits" / "kale.yaml"
    text = kale.read_text()
    assert "max: 128, step: 16" in text and "maxTrials: 12" in text
    kale.write_text(
        text.replace("max: 128, step: 16", "max: 256, step: 16").replace(
            "maxTrials: 12", "maxTrials: 16"
        )
    )
    result = kfg(repo, "render", "digits", "-o", "deploy/digits-mlp", "--force")
    assert result.returncode == 0, result.stderr
    after = _experiment(kustomize(repo / "deploy" / "digits-mlp"))
    assert after["spec"] != before["spec"]
    try:
        stored = _apply(control_plane, after, namespace)
    except ApiError as exc:
        pytest.fail(f"the new tuning spec is refused over the synced one: {exc}")
    assert stored["spec"]["maxTrialCount"] == 16
    assert not list(added(after["spec"], stored["spec"]))

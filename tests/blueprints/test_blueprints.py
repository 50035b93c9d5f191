"""Every blueprint builds with kubectl kustomize and matches the upstream schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import crds
from tests.conftest import REPO

BLUEPRINTS = REPO / "blueprints"
# No CRD for Kubeflow's PodDefault is available here; its fields are checked by hand.
UNVALIDATED = {("kubeflow.org/v1alpha1", "PodDefault")}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or "kubectl"
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


@pytest.mark.parametrize("name", ["argocd", "flux", "kubeflow-namespace"])
def test_blueprint_builds_and_validates(name: str) -> None:
    objects = kustomize(BLUEPRINTS / name)
    assert objects
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) not in UNVALIDATED:
            crds.validate(obj)
    assert (BLUEPRINTS / name / "README.md").is_file() and (BLUEPRINTS / name / "Kptfile").is_file()


def test_argocd_syncs_with_pruning_and_server_side_apply() -> None:
    objects = {o["kind"]: o for o in kustomize(BLUEPRINTS / "argocd")}
    application = objects["Application"]["spec"]
    assert application["syncPolicy"]["automated"]["prune"] is True
    assert "ServerSideApply=true" in application["syncPolicy"]["syncOptions"]
    [generator] = objects["ApplicationSet"]["spec"]["generators"]
    assert generator["git"]["directories"] == [{"path": "deploy/*"}]


def test_flux_waits_for_kubeflow_and_prunes() -> None:
    objects = {o["kind"]: o for o in kustomize(BLUEPRINTS / "flux")}
    spec = objects["Kustomization"]["spec"]
    assert spec["prune"] is True and spec["dependsOn"] == [{"name": "kubeflow"}]
    assert spec["sourceRef"]["name"] == objects["GitRepository"]["metadata"]["name"]


def test_namespace_blueprint_gives_kfp_access_and_snapshot_rights() -> None:
    objects = {o["kind"]: o for o in kustomize(BLUEPRINTS / "kubeflow-namespace")}
    pod_default = objects["PodDefault"]["spec"]
    assert pod_default["selector"]["matchLabels"] == {"access-ml-pipeline": "true"}
    [source] = pod_default["volumes"][0]["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    assert objects["VolumeSnapshotClass"]["deletionPolicy"] == "Retain"
    rules = objects["Role"]["rules"]
    assert {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshots"],
        "verbs": ["get", "list", "watch", "create"],
    } in rules


def test_config_management_plugin_adds_the_sidecar(tmp_path: Path) -> None:
    """The Component applied to a repo-server Deployment, as an Argo CD install has it."""
    (tmp_path / "repo-server.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "argocd-repo-server"},
                "spec": {
                    "selector": {"matchLabels": {"app": "repo"}},
                    "template": {
                        "metadata": {"labels": {"app": "repo"}},
                        "spec": {
                            "containers": [{"name": "argocd-repo-server", "image": "argocd"}],
                            "volumes": [
                                {"name": "var-files", "emptyDir": {}},
                                {"name": "plugins", "emptyDir": {}},
                            ],
                        },
                    },
                },
            }
        )
    )
    component = os.path.relpath(BLUEPRINTS / "argocd" / "cmp", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [repo-server.yaml]\ncomponents: [{component}]\n"
    )
    objects = {o["kind"]: o for o in kustomize(tmp_path)}
    deployment = objects["Deployment"]
    crds.validate(deployment)
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["kfg"]["command"] == ["/var/run/argocd/argocd-cmp-server"]
    plugin = yaml.safe_load(objects["ConfigMap"]["data"]["plugin.yaml"])
    assert plugin["spec"]["generate"]["command"] == ["kfg", "render", "--stdout", "."]
    assert plugin["spec"]["discover"]["find"]["glob"] == "**/kale.yaml"

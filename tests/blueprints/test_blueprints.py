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

from kfg.render.build import PIPELINE_STAGE, RELEASE_STAGE, STAGES, Rendered, aggregate
from kfg.render.package import write
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


@pytest.mark.parametrize(
    "name", ["argocd/application", "argocd/applicationset", "flux", "kubeflow-namespace"]
)
def test_blueprint_builds_and_validates(name: str) -> None:
    objects = kustomize(BLUEPRINTS / name)
    assert objects
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) not in UNVALIDATED:
            crds.validate(obj)
    package = BLUEPRINTS / name
    readme = package / "README.md" if name.count("/") == 0 else package.parent / "README.md"
    assert readme.is_file() and (package / "Kptfile").is_file()


def test_argocd_application_and_applicationset_are_alternatives() -> None:
    # Two owners of the same objects, both pruning, would delete each other's objects: no
    # package builds both, and the top of the blueprint is no kustomization to apply.
    assert not (BLUEPRINTS / "argocd" / "kustomization.yaml").exists()
    kinds = {
        name: [o["kind"] for o in kustomize(BLUEPRINTS / "argocd" / name)]
        for name in ("application", "applicationset")
    }
    assert kinds == {"application": ["Application"], "applicationset": ["ApplicationSet"]}
    readme = (BLUEPRINTS / "argocd" / "README.md").read_text()
    assert "apply **one** of them, never both" in readme


def test_argocd_syncs_with_pruning_and_server_side_apply() -> None:
    [app] = kustomize(BLUEPRINTS / "argocd" / "application")
    application = app["spec"]
    assert application["syncPolicy"]["automated"]["prune"] is True
    assert "ServerSideApply=true" in application["syncPolicy"]["syncOptions"]
    [appset] = kustomize(BLUEPRINTS / "argocd" / "applicationset")
    template = appset["spec"]["template"]["spec"]
    assert template["syncPolicy"]["automated"]["prune"] is True
    assert "ServerSideApply=true" in template["syncPolicy"]["syncOptions"]
    [generator] = appset["spec"]["generators"]
    # One Application per pipeline directory, never one for the stages kfg writes for Flux.
    assert generator["git"]["directories"] == [
        {"path": "deploy/*"},
        *({"path": f"deploy/{stage}", "exclude": True} for stage in STAGES),
    ]


def _flux() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    objects = kustomize(BLUEPRINTS / "flux")
    [source] = [o for o in objects if o["kind"] == "GitRepository"]
    kustomizations = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Kustomization"}
    return source, kustomizations


def test_flux_applies_pipelines_then_releases_and_prunes() -> None:
    # kubeflow/pipelines 2.17.0 backend/src/apiserver/webhook/pipelineversion_webhook.go
    # refuses a PipelineVersion whose Pipeline is missing, and fluxcd/pkg ssa ApplyAll
    # (kustomize-controller v1.9.4) dry-runs every object of a stage before applying any: the
    # Pipelines must be one Kustomization, the versions another that depends on it.
    source, kustomizations = _flux()
    pipelines, releases = kustomizations["kfg-pipelines"], kustomizations["kfg-releases"]
    assert pipelines["spec"]["path"] == f"./deploy/{PIPELINE_STAGE}"
    assert releases["spec"]["path"] == f"./deploy/{RELEASE_STAGE}"
    assert pipelines["spec"]["dependsOn"] == [{"name": "kubeflow"}]
    assert releases["spec"]["dependsOn"] == [{"name": "kfg-pipelines"}]
    for kustomization in (pipelines, releases):
        spec = kustomization["spec"]
        assert spec["prune"] is True
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
        assert spec["targetNamespace"] == pipelines["spec"]["targetNamespace"]


def _rendered_examples() -> list[Rendered]:
    from kfg.core.load import load_pipeline
    from kfg.render.build import render

    items = []
    for name in ("wine", "digits"):
        result = load_pipeline(REPO / "examples" / name / "kale.yaml", root=REPO)
        assert result.pipeline and result.flow and result.notebook
        items.append(render(result.pipeline, result.flow, result.notebook, REPO))
    return items


def _stage(directory: Path, path: str) -> list[dict[str, Any]]:
    return kustomize(directory / path.removeprefix("./deploy/"))


@pytest.mark.parametrize("layout", ["one pipeline", "aggregate"])
def test_flux_paths_split_what_kfg_renders(layout: str, tmp_path: Path) -> None:
    """Each Flux path of the blueprint exists in what `kfg render` writes to deploy/.

    The first holds every Pipeline and no PipelineVersion; the second every PipelineVersion
    and no Pipeline; together they are the whole package, as its top level builds it.
    """
    items = _rendered_examples()
    package = items[1].package if layout == "one pipeline" else aggregate(items, "examples")
    if layout == "one pipeline":
        items = items[1:]
    deploy = tmp_path / "deploy"
    write(package, deploy)
    _, kustomizations = _flux()
    first = _stage(deploy, kustomizations["kfg-pipelines"]["spec"]["path"])
    second = _stage(deploy, kustomizations["kfg-releases"]["spec"]["path"])
    names = sorted(i.pipeline.name for i in items)
    assert sorted(o["metadata"]["name"] for o in first if o["kind"] == "Pipeline") == names
    assert not [o for o in first if o["kind"] == "PipelineVersion"]
    assert sorted(o["spec"]["pipelineName"] for o in second if o["kind"] == "PipelineVersion") == (
        names
    )
    assert not [o for o in second if o["kind"] == "Pipeline"]

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return (o["kind"], o["metadata"]["name"])

    assert sorted(map(key, first + second)) == sorted(map(key, kustomize(deploy)))
    assert sorted(map(key, first + second)) == sorted(key(o) for i in items for o in i.objects)


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

"""Flux's own server-side apply syncs the shipped blueprints and the rendered packages.

tools/flux-apply runs one reconciliation of a Flux Kustomization the way
kustomize-controller v1.9.4 does (fluxcd/pkg/kustomize generator and build, fluxcd/pkg/ssa
v0.76.1 ApplyAllStaged with the controller's options). ApplyAllStaged dry-runs every object
of a stage before applying any, through the admission webhooks, so an object whose webhook
needs another object of the same stage to exist already fails the whole stage on every
retry. The cluster runs Katib's webhooks and the PipelineVersion webhook stand-in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.cluster import ControlPlane, Process
from tests.e2e.conftest import Repository, kfg, tool
from tests.e2e.webhooks import KATIB_LABEL, PipelineVersionWebhook

BLUEPRINTS = REPO / "blueprints"


@dataclass
class Sync:
    ok: bool
    changes: dict[str, str]  # "Kind/namespace/name" -> created, configured, unchanged, ...
    error: str


def flux_apply(
    plane: ControlPlane,
    binary: Path,
    kustomization: dict[str, Any],
    source: Path,
    work: Path,
    custom_stage_kinds: str = "",
) -> Sync:
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{kustomization['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(kustomization))
    command = [str(binary), f"-kustomization={path}", f"-source={source}"]
    if custom_stage_kinds:
        command.append(f"-custom-stage-kinds={custom_stage_kinds}")
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
    )
    changes = {}
    for line in result.stdout.splitlines():
        entry = json.loads(line)
        changes[entry["subject"]] = entry["action"]
    return Sync(result.returncode == 0, changes, result.stderr.strip())


def blueprint_kustomizations() -> list[dict[str, Any]]:
    """The Flux Kustomizations shipped in blueprints/flux, dependencies first."""
    found = [
        doc
        for path in sorted((BLUEPRINTS / "flux").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("apiVersion", "").startswith("kustomize.toolkit.fluxcd.io/")
    ]
    names = {k["metadata"]["name"] for k in found}
    ordered: list[dict[str, Any]] = []
    while len(ordered) < len(found):
        done = {k["metadata"]["name"] for k in ordered}
        ready = [
            k
            for k in found
            if k["metadata"]["name"] not in done
            and all(
                d["name"] in done or d["name"] not in names for d in k["spec"].get("dependsOn", [])
            )
        ]
        assert ready, "blueprints/flux has a dependency cycle"
        ordered += ready
    return ordered


def bootstrap(name: str, path: str) -> dict[str, Any]:
    """A Kustomization like the one `flux bootstrap` makes to apply a directory of the repo."""
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "path": path,
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }


def artifact(repo: Path, into: Path) -> Path:
    """What source-controller serves for blueprints/flux/gitrepository.yaml: only deploy/."""
    ignore = yaml.safe_load((BLUEPRINTS / "flux" / "gitrepository.yaml").read_text())
    assert ignore["spec"]["ignore"].split() == ["/*", "!/deploy/"]
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    shutil.copytree(repo / "deploy", into / "deploy")
    return into


@dataclass
class FluxCluster:
    plane: ControlPlane
    binary: Path
    work: Path

    def prepare(self, namespace: str) -> None:
        """The cluster kfg's blueprints expect: Flux's namespace and the blueprints it
        applies, a Kubeflow profile namespace with the namespace blueprint applied."""
        api = self.plane.api
        api.namespace("flux-system")
        api.namespace(namespace, KATIB_LABEL)
        repo = self.work / "platform-repo"
        if not repo.exists():
            repo.mkdir(parents=True)
            shutil.copytree(BLUEPRINTS, repo / "blueprints")
        sync = flux_apply(
            self.plane,
            self.binary,
            bootstrap("flux-blueprint", "./blueprints/flux"),
            repo,
            self.work,
        )
        assert sync.ok, sync.error
        namespace_blueprint = bootstrap("kubeflow-namespace", "./blueprints/kubeflow-namespace")
        namespace_blueprint["spec"]["targetNamespace"] = namespace
        sync = flux_apply(self.plane, self.binary, namespace_blueprint, repo, self.work)
        assert sync.ok, sync.error

    def sync(
        self, source: Path, namespace: str | None = None, custom_stage_kinds: str = ""
    ) -> list[Sync]:
        results = []
        for kustomization in blueprint_kustomizations():
            if namespace:
                kustomization["spec"]["targetNamespace"] = namespace
            result = flux_apply(
                self.plane, self.binary, kustomization, source, self.work, custom_stage_kinds
            )
            results.append(result)
            if not result.ok:
                break
        return results


@pytest.fixture(scope="module")
def flux(
    control_plane: ControlPlane,
    katib: Process,
    kfp_webhook: PipelineVersionWebhook,
    tmp_path_factory: pytest.TempPathFactory,
) -> FluxCluster:
    return FluxCluster(control_plane, tool("flux-apply"), tmp_path_factory.mktemp("flux"))


def _failures(results: list[Sync]) -> str:
    return "\n".join(r.error for r in results if not r.ok)


def _rendered_subjects(repo: Repository, namespace: str) -> set[str]:
    subjects = set()
    for package in ("wine-quality", "digits-mlp", "full-pipeline"):
        for obj in repo.objects(package):
            subjects.add(f"{obj['kind']}/{namespace}/{obj['metadata']['name']}")
    return subjects


def test_first_sync_of_the_blueprint_as_shipped_applies_everything(
    flux: FluxCluster, rendered: Repository
) -> None:
    shipped = [k["spec"]["targetNamespace"] for k in blueprint_kustomizations()]
    namespace = shipped[0]
    flux.prepare(namespace)
    source = artifact(rendered.root, flux.work / "artifact-first")
    results = flux.sync(source)
    assert all(r.ok for r in results), _failures(results)
    changes = {k: v for r in results for k, v in r.changes.items()}
    assert _rendered_subjects(rendered, namespace) <= set(changes)
    assert set(changes.values()) == {"created"}


def test_syncs_are_idempotent_and_a_new_revision_adds_a_version(
    flux: FluxCluster, rendered: Repository, tmp_path: Path
) -> None:
    """With Pipelines staged before the rest (kustomize-controller's
    --custom-apply-stage-kinds), every rendered object is created, a second sync changes
    nothing, and a new notebook revision adds a PipelineVersion beside the old one."""
    namespace = "flux-revisions"
    flux.prepare(namespace)
    staged = "pipelines.kubeflow.org/Pipeline"  # fluxcd/pkg ssa/utils/meta.go ParseGroupKindSet
    first = flux.sync(artifact(rendered.root, tmp_path / "a1"), namespace, staged)
    assert all(r.ok for r in first), _failures(first)
    created = {k: v for r in first for k, v in r.changes.items()}
    assert _rendered_subjects(rendered, namespace) <= set(created)
    assert set(created.values()) == {"created"}, created

    second = flux.sync(artifact(rendered.root, tmp_path / "a2"), namespace, staged)
    assert all(r.ok for r in second), _failures(second)
    changed = {k: v for r in second for k, v in r.changes.items() if v != "unchanged"}
    assert not changed, f"a second sync with nothing changed changed: {changed}"

    repo = tmp_path / "repo"
    shutil.copytree(rendered.root, repo)
    notebook = repo / "wine" / "wine.ipynb"
    book = json.loads(notebook.read_text())
    load = book["cells"][6]  # cell 7: the `load` step in wine/kale.yaml
    assert load["cell_type"] == "code"
    load["source"] = "".join(load["source"]) + "\n# a new revision\n"
    notebook.write_text(json.dumps(book, indent=1))
    result = kfg(repo, "render", "wine", "digits", "full", "-o", "deploy", "--force")
    assert result.returncode == 0, result.stderr
    third = flux.sync(artifact(repo, tmp_path / "a3"), namespace, staged)
    assert all(r.ok for r in third), _failures(third)
    changes = {k: v for r in third for k, v in r.changes.items() if v != "unchanged"}
    new_versions = [k for k, v in changes.items() if k.startswith("PipelineVersion/")]
    assert len(new_versions) == 1 and changes[new_versions[0]] == "created", changes
    old = [k for k in created if k.startswith("PipelineVersion/") and "wine" in k]
    api = flux.plane.api
    for subject in old:  # never pruned: runs refer to it
        _kind, ns, name = subject.split("/")
        assert api.get(
            f"/apis/pipelines.kubeflow.org/v2beta1/namespaces/{ns}/pipelineversions/{name}"
        )

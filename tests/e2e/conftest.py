"""Fixtures of the e2e tier: the Go tools, a control plane, webhooks and rendered packages.

Every fixture that starts a process is session-scoped and stops it in its finalizer (also
on failure and Ctrl-C); nothing is skipped: a missing tool fails the tests that need it.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, REPO
from tests.e2e.cluster import ControlPlane, Process, load_all
from tests.e2e.tools import build
from tests.e2e.webhooks import PipelineVersionWebhook, katib_webhooks, pipelineversion_webhook
from tests.notebooks import write_notebook

CRDS = REPO / "tests" / "crds"
DATA = Path(__file__).resolve().parent / "data"
KUBECTL = Path(sys.executable).parent / "kubectl"


def tool(name: str) -> Path:
    """A Go binary, built now if this machine has not built it yet; fails, never skips."""
    try:
        return build.binary(name)
    except build.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver with the CRDs of tests/crds installed and Established: those of
    Kubeflow, Katib, CSI snapshots and Flux. Argo CD's are left out: no test here applies an
    Argo CD object, and its ApplicationSet CRD (1.4 MB) alone costs the tier seconds."""
    plane = ControlPlane.start(
        tmp_path_factory.mktemp("control-plane"), tool("etcd"), tool("kube-apiserver")
    )
    try:
        plane.install_crds(
            sorted(p for p in CRDS.glob("*.yaml") if not p.name.startswith("argocd-"))
        )
        yield plane
    finally:
        plane.stop()


# --- rendered packages --------------------------------------------------------------------

FULL_CELLS = [
    ("code", "learning_rate = 0.01\nrepeats = 2"),
    (
        "code",
        "import pathlib\npathlib.Path('/work/data.txt').write_text('1 2 3')\ndata = [1, 2, 3]",
    ),
    ("code", "score = learning_rate * repeats * len(data)"),
]

# A pipeline using what the examples do not: GPUs, node selectors, tolerations, secrets, env,
# pod labels and annotations, volumes with snapshots, `snapshot: after`, tuning, and a
# launcher with its own token and a run-on-sync Job.
FULL_SPEC: dict[str, Any] = {
    "notebook": "full.ipynb",
    "image": "python:3.11-slim",
    "parameters": {"cell": 1},
    "volumes": [
        {"name": "work", "claim": "work", "mountPath": "/work"},
        {
            "name": "data",
            "claim": "training-data",
            "mountPath": "/data",
            "snapshot": {"version": "v1", "size": "1Gi", "className": "kfg-retain"},
        },
    ],
    "steps": [
        {"name": "prepare", "cells": [2], "volumes": ["work"], "snapshot": "after"},
        {
            "name": "train",
            "cells": [3],
            "resources": {
                "cpu": {"request": "500m", "limit": "2"},
                "memory": "1Gi",
                "gpu": {"count": 1, "type": "nvidia.com/gpu"},
            },
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {
                    "key": "spot",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoExecute",
                    "tolerationSeconds": 30,
                },
            ],
            "secrets": [{"secret": "s3", "key": "AWS_KEY"}],
            "env": {"MODE": "fast"},
            "labels": {"team": "ml"},
            "annotations": {"owner": "me"},
            "volumes": ["data"],
            "timeout": "45m",
            "retries": 2,
        },
    ],
    "metrics": [{"name": "score", "variable": "score"}],
    "tuning": {
        "objective": {"metric": "score", "type": "maximize"},
        "algorithm": {"name": "random"},
        "maxTrials": 4,
        "parallelTrials": 2,
        "parameters": {"learning_rate": {"type": "double", "min": 0.001, "max": 0.1}},
    },
    "launcher": {"kfpAccess": "token", "runOnSync": True, "image": "ghcr.io/acme/kfg:0.1.0"},
}

PACKAGES = ("wine-quality", "digits-mlp", "full-pipeline", "wine-scheduled")


def write_full(directory: Path, spec: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_notebook(directory / "full.ipynb", FULL_CELLS)
    document = {
        "apiVersion": "kfg.dev/v1alpha1",
        "kind": "NotebookPipeline",
        "metadata": {"name": "full-pipeline"},
        "spec": spec or FULL_SPEC,
    }
    path = directory / "kale.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def kfg(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", *args], cwd=repo, capture_output=True, text=True, timeout=600
    )


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize`: the objects a GitOps tool sends for this directory."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


@dataclass
class Repository:
    """A git repository holding the examples and the full pipeline, rendered to deploy/."""

    root: Path
    _built: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    def render(self) -> None:
        self._built.clear()
        paths = ("wine", "digits", "full", "scheduled")
        result = kfg(self.root, "render", *paths, "-o", "deploy", "--force")
        assert result.returncode == 0, result.stdout + result.stderr

    def objects(self, package: str) -> list[dict[str, Any]]:
        """The package built by kustomize (a fresh copy each call: tests may edit it)."""
        if package not in self._built:
            self._built[package] = kustomize(self.deploy / package)
        return copy.deepcopy(self._built[package])


def make_repository(root: Path) -> Repository:
    (root / ".git").mkdir(parents=True)
    for name in ("wine", "digits"):
        shutil.copytree(EXAMPLES / name, root / name)
    write_full(root / "full")
    # A pipeline with two schedules (CronJobs), the render tests' own.
    scheduled = REPO / "tests" / "render" / "scheduled" / "kale.yaml"
    (root / "scheduled").mkdir()
    (root / "scheduled" / "kale.yaml").write_text(
        scheduled.read_text()
        .replace("../../../examples/wine/", "../wine/")
        .replace("  namespace: team-a\n", "")  # each test applies into its own namespace
    )
    repository = Repository(root)
    repository.render()
    return repository


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Repository:
    """Both examples and the full pipeline rendered by `kfg render` (read-only: copy it)."""
    return make_repository(tmp_path_factory.mktemp("rendered"))


# --- webhooks -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def katib(control_plane: ControlPlane) -> Iterator[Process]:
    """Katib v0.19.0's Experiment webhooks, for namespaces labelled as Kubeflow profiles."""
    with katib_webhooks(control_plane, tool("katib-webhook")) as process:
        yield process


@pytest.fixture(scope="session")
def kfp_webhook(control_plane: ControlPlane) -> Iterator[PipelineVersionWebhook]:
    """The PipelineVersion webhook stand-in (KFP 2.17.0's own cannot be built)."""
    with pipelineversion_webhook(control_plane) as hook:
        yield hook

"""Going back in time: a notebook that reproduces one step of a finished pipeline run.

The notebook's first code cell sets the parameters the step read and loads exactly the
inputs it received (from a directory of saved values, or from a KFP run's artifacts),
followed by the prelude and the step's own cells, so the step can be re-run and debugged
cell by cell. The cells run in the same order as in the pipeline: parameters, prelude,
inputs, step; when the prelude would overwrite an input, the inputs move after it.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline
from kfg.errors import KfgError
from kfg.notebook.reader import Notebook
from kfg.pysource.source import bound_names, parse_cell

if TYPE_CHECKING:
    from kfg.launcher.kfpapi import Kfp

NOTEBOOK_FORMAT = (4, 5)


class RestoreError(KfgError):
    """The step's inputs cannot be found; the message says which and where."""


@dataclass(frozen=True)
class Inputs:
    """Where each input comes from: a Python expression per variable, and a description."""

    expressions: dict[str, str]
    parameters: dict[str, Any]
    origin: str
    imports: str


def from_paths(
    pipeline: Pipeline, flow: Flow, step: str, paths: dict[str, Path], origin: str
) -> Inputs:
    """Inputs at known paths, such as the local engine's cache entries."""
    here = flow.step(step)
    return Inputs(
        expressions={
            v: f"restore_value({str(p.resolve())!r}, globals())" for v, p in paths.items()
        },
        parameters={p.name: p.default for p in pipeline.parameters if p.name in here.parameters},
        origin=origin,
        imports="from kfg.runtime.step import restore_value",
    )


def from_directory(pipeline: Pipeline, flow: Flow, step: str, directory: Path) -> Inputs:
    """Inputs saved as `<directory>/<variable>` (what a step's outputs look like on disk)."""
    here = flow.step(step)
    missing = [v for v in here.inputs if not (directory / v).exists()]
    if missing:
        raise RestoreError(
            f"{directory} has no saved value for {', '.join(f'`{m}`' for m in missing)}"
            f" (step `{step}` reads {', '.join(here.inputs) or 'nothing'})"
        )
    paths = {v: directory / v for v in here.inputs}
    return from_paths(pipeline, flow, step, paths, f"the values saved in {directory}")


# What `kfg restore --run` says on a server without an artifact API, such as KFP 2.17.0.
NO_ARTIFACT_API = (
    "the KFP API at {endpoint} serves no artifact endpoints (/apis/v2beta1/artifact_tasks,"
    " /apis/v2beta1/artifacts/ID): KFP 2.17.0 keeps a run's artifacts in ML Metadata and its"
    " object store only (the REST endpoints exist on KFP's unreleased mlmd-removal branch), so"
    " --run cannot download the inputs of step `{step}`. Instead, download the output"
    " artifacts it reads ({inputs}) from run {run} in the KFP UI into one directory, one file"
    " named after each variable, and use --inputs DIR; or use --local after `kfg run`"
)


def artifact_api(kfp: Kfp, run_id: str) -> bool:
    """Whether the server has the artifact endpoints `--run` downloads through.

    Asked with the cheapest request they serve; the 2.17.0 gateway answers 404 for a path
    it has no route for.
    """
    from kfg.launcher.kfpapi import ABSENT, KfpError

    try:
        kfp.get("/apis/v2beta1/artifact_tasks", [("run_ids", run_id), ("page_size", "1")])
    except KfpError as exc:
        if exc.status in ABSENT:
            return False
        raise RestoreError(
            f"asking {kfp.endpoint} for the artifacts of run {run_id}: {exc}"
        ) from None
    return True


def from_run(
    pipeline: Pipeline, flow: Flow, step: str, run: dict[str, Any], endpoint: str
) -> Inputs:
    """Inputs of `step` in a KFP run (the run as the v2beta1 API returns it), on a server
    with the artifact endpoints (see `artifact_api`)."""
    from kfg.kube.names import output_name

    here = flow.step(step)
    tasks = {
        t.get("display_name"): t for t in (run.get("run_details") or {}).get("task_details") or []
    }
    expressions = {}
    for variable, source in here.inputs.items():
        task = tasks.get(source)
        ids = ((task or {}).get("outputs") or {}).get(output_name(variable), {}).get("artifact_ids")
        if not ids:
            raise RestoreError(
                f"run {run.get('run_id')} has no output `{variable}` of step `{source}`"
                " (did that step finish?)"
            )
        expressions[variable] = f"fetch_value({endpoint!r}, {ids[0]!r}, globals())"
    runtime = (run.get("runtime_config") or {}).get("parameters") or {}
    parameters = {
        p.name: runtime.get(p.name, p.default)
        for p in pipeline.parameters
        if p.name in here.parameters
    }
    return Inputs(
        expressions=expressions,
        parameters=parameters,
        origin=f"the artifacts of KFP run {run.get('run_id')}",
        imports="from kfg.cluster.restore import fetch_value",
    )


DOWNLOAD_TIMEOUT = 600  # seconds without data before a download is given up


def fetch_value(endpoint: str, artifact_id: str, namespace: dict[str, Any]) -> Any:
    """Download an artifact through KFP's signed URL and load it as the step would."""
    from kfg.launcher.kfpapi import ABSENT, Kfp, KfpError
    from kfg.runtime.step import restore_value

    kfp = Kfp.connect(endpoint)
    try:
        artifact = kfp.get(f"/apis/v2beta1/artifacts/{artifact_id}", [("view", "DOWNLOAD")])
    except KfpError as exc:
        if exc.status in ABSENT:
            raise RestoreError(
                f"the KFP API at {endpoint} has no artifact {artifact_id} or no artifact"
                f" endpoint ({exc}); KFP 2.17.0 serves none"
            ) from None
        raise RestoreError(f"reading artifact {artifact_id}: {exc}") from None
    url = artifact.get("download_url")
    if not url:
        raise RestoreError(f"KFP gave no download URL for artifact {artifact_id}")
    with tempfile.TemporaryDirectory(prefix="kfg-restore-") as scratch:
        target = os.path.join(scratch, "value")
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            open(target, "wb") as handle,
        ):
            shutil.copyfileobj(response, handle)
        return restore_value(target, namespace)


def _code(source: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }


def _markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def _prelude_binds(pipeline: Pipeline, notebook: Notebook) -> set[str]:
    names: set[str] = set()
    for position in pipeline.prelude:
        tree = parse_cell(notebook.cell(position).source)
        if isinstance(tree, ast.Module):
            names |= bound_names(tree)
    return names


def build(
    pipeline: Pipeline,
    notebook: Notebook,
    step: str,
    inputs: Inputs,
    packages: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The restored notebook as nbformat 4 JSON; `packages` are installed by its first cell."""
    cells = [
        _markdown(
            f"# Step `{step}` of `{pipeline.name}`\n\n"
            f"Restored by `kfg restore` from {inputs.origin}: the next cell gives the step exactly"
            f" the parameters and inputs it had, then come the prelude and the step's cells"
            f" (cells {', '.join(str(c) for c in pipeline.step(step).cells)} of"
            f" `{pipeline.notebook.name}`)."
        )
    ]
    if packages:
        cells.append(setup_cell(packages))
    parameters = [f"{name} = {value!r}" for name, value in inputs.parameters.items()]
    loads = [f"{v} = {e}" for v, e in inputs.expressions.items()]
    clash = _prelude_binds(pipeline, notebook) & set(inputs.expressions)
    first = ["# Parameters the step reads", *parameters] if parameters else []
    load_cell = [inputs.imports, "", "# Inputs from earlier steps", *loads] if loads else []
    if not clash:
        first = [*load_cell, *([""] if load_cell and first else []), *first]
        load_cell = []
    if first:
        cells.append(_code("\n".join(first)))
    for position in pipeline.prelude:
        cells.append(_code(notebook.cell(position).source))
    if load_cell:
        cells.append(_code("\n".join(load_cell)))
    for position in pipeline.step(step).cells:
        cells.append(_code(notebook.cell(position).source))
    for index, cell in enumerate(cells, start=1):
        cell["id"] = f"kfg-restore-{index}"
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "kfg": {"pipeline": pipeline.name, "step": step, "origin": inputs.origin},
        },
        "nbformat": NOTEBOOK_FORMAT[0],
        "nbformat_minor": NOTEBOOK_FORMAT[1],
    }


def dumps(book: dict[str, Any]) -> str:
    """The notebook as Jupyter writes it, checked against nbformat's own schema first.

    `kfg restore` is not on a fast path, so the reference library validates and writes it
    (kfg's reader avoids nbformat's 0.3 s import only where commands must start fast).
    """
    import nbformat

    node = nbformat.from_dict(book)  # type: ignore[no-untyped-call]
    nbformat.validate(node)
    text: str = nbformat.writes(node)  # type: ignore[no-untyped-call]
    return text if text.endswith("\n") else text + "\n"


# Kubeflow's JupyterLab image with the scientific Python stack. It has neither kfg nor the
# step's pinned packages: `setup_cell` installs the packages, and the restored notebook's
# loading cell imports kfg, so pass `--image` with kfg installed (see docs/cluster.md).
NOTEBOOK_IMAGE = "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0"
# Kubeflow runs notebook pods as the profile's default-editor ServiceAccount, the one a
# profile's KFP access is granted to.
NOTEBOOK_SERVICE_ACCOUNT = "default-editor"
# The KFP API authenticates a ServiceAccount token of this audience; kfp.Client reads the
# file named by the environment variable (kubeflow/pipelines 2.17.0
# sdk/python/kfp/client/__init__.py and set_volume_credentials.py).
KFP_TOKEN_AUDIENCE = "pipelines.kubeflow.org"
KFP_TOKEN_DIRECTORY = "/var/run/secrets/kubeflow/pipelines"
KFP_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
KFP_TOKEN_SECONDS = 7200


def setup_cell(packages: tuple[str, ...]) -> dict[str, Any]:
    """A first cell installing what the step's component installs in the cluster.

    The notebook server's image has its own versions of pandas and scikit-learn; values
    pickled by the step load reliably only under the versions the step ran with.
    """
    quoted = " ".join(f"'{p}'" for p in packages)
    return _code(
        "# The packages the step installs in the cluster, at the same versions\n"
        f"%pip install --quiet {quoted}"
    )


def notebook_server(
    name: str,
    namespace: str | None,
    snapshot: str,
    mount_path: str,
    size: str,
    image: str = NOTEBOOK_IMAGE,
    storage_class: str | None = None,
) -> list[dict[str, Any]]:
    """A Kubeflow Notebook server with a claim restored from `snapshot` mounted at `mount_path`.

    The claim names no StorageClass unless one is given, so the cluster's default class
    provisions it. The pod mounts a ServiceAccount token for the KFP API itself instead of
    relying on the `access-ml-pipeline` PodDefault, which a profile namespace may lack;
    it must not also carry that PodDefault's label, whose volume would mount at the same
    path.
    """
    claim = f"{name}-data"

    def metadata(object_name: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": object_name, "labels": {"app": name}}
        if namespace:
            meta["namespace"] = namespace
        return meta

    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "dataSource": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot,
        },
    }
    if storage_class:
        claim_spec["storageClassName"] = storage_class
    token = {
        "name": "kfp-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "audience": KFP_TOKEN_AUDIENCE,
                        "expirationSeconds": KFP_TOKEN_SECONDS,
                    }
                }
            ]
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(claim),
            "spec": claim_spec,
        },
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Notebook",
            "metadata": metadata(name),
            "spec": {
                "template": {
                    "spec": {
                        "serviceAccountName": NOTEBOOK_SERVICE_ACCOUNT,
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "env": [
                                    {"name": KFP_TOKEN_ENV, "value": f"{KFP_TOKEN_DIRECTORY}/token"}
                                ],
                                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                                "volumeMounts": [
                                    {"name": "data", "mountPath": mount_path},
                                    {
                                        "name": "kfp-token",
                                        "mountPath": KFP_TOKEN_DIRECTORY,
                                        "readOnly": True,
                                    },
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                            token,
                        ],
                    }
                }
            },
        },
    ]

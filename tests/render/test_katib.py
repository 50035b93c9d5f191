"""The Katib Experiment and the launcher's RBAC: upstream schemas, Katib's rules, stable names."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfg.core.load import load_pipeline
from kfg.notebook.reader import read_notebook
from kfg.render import gitops
from kfg.render.build import EXPERIMENT_FILE, LAUNCHER_FILE, Rendered, render
from kfg.render.katib import METRICS_FORMAT, NAME_MAX, NAME_PATTERN, experiment_name
from kfg.scaffold import propose
from kfg.scaffold.writer import to_yaml
from tests import crds
from tests.conftest import EXAMPLES, REPO
from tests.notebooks import KALE_METADATA, KALE_TITANIC, write_notebook


def _render(config: Path, root: Path = REPO) -> Rendered:
    result = load_pipeline(config, root=root)
    assert result.ok and result.pipeline and result.flow and result.notebook, result.diagnostics
    return render(result.pipeline, result.flow, result.notebook, root)


def _documents(item: Rendered, name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(item.package.files[name]) if d]


@pytest.fixture(scope="module")
def digits() -> Rendered:
    return _render(EXAMPLES / "digits" / "kale.yaml")


def _experiment(item: Rendered) -> dict[str, Any]:
    [experiment] = _documents(item, EXPERIMENT_FILE)
    return experiment


def test_experiment_matches_katibs_schema_and_rules(digits: Rendered) -> None:
    experiment = _experiment(digits)
    crds.validate(experiment)
    spec = experiment["spec"]
    name = experiment["metadata"]["name"]
    assert NAME_PATTERN.match(name) and len(name) <= NAME_MAX
    assert spec["parallelTrialCount"] <= spec["maxTrialCount"]
    assert spec["maxFailedTrialCount"] <= spec["maxTrialCount"]
    # What Katib's webhook would otherwise fill in, so GitOps sees no drift.
    assert spec["resumePolicy"] == "Never"
    assert spec["objective"]["metricStrategies"] == [{"name": "val-accuracy", "value": "max"}]
    assert all(p["feasibleSpace"]["distribution"] for p in spec["parameters"])
    template = spec["trialTemplate"]
    assert template["successCondition"] and template["failureCondition"]
    assert template["primaryContainerName"] == "kfg-trial"
    assert gitops.is_kept(experiment)
    assert experiment["metadata"]["annotations"][gitops.ARGOCD_SYNC_WAVE] == "3"


def test_feasible_space_values_stay_strings_for_yaml_1_2_readers(digits: Rendered) -> None:
    text = digits.package.files[EXPERIMENT_FILE]
    assert "min: '1e-06'" in text  # plain 1e-06 is a number to kustomize and Argo CD


def test_trial_job_is_a_valid_job_running_the_launcher(digits: Rendered) -> None:
    template = _experiment(digits)["spec"]["trialTemplate"]
    job = {**template["trialSpec"], "metadata": {"name": "trial"}}
    crds.validate(job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == template["primaryContainerName"]
    args = container["args"]
    assert args[:2] == ["trial", "--pipeline"]
    version = digits.version
    assert args[args.index("--version") + 1] == version
    assert "hidden_units:int=${trialParameters.hidden_units}" in args
    assert "learning_rate:float=${trialParameters.learning_rate}" in args
    referenced = set(re.findall(r"\$\{trialParameters\.([^}]+)\}", " ".join(args)))
    assert referenced == {p["name"] for p in template["trialParameters"]}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert "access-ml-pipeline" not in labels  # kfpAccess: token, the default


def test_metrics_filter_reads_exactly_the_launchers_lines() -> None:
    pattern = re.compile(METRICS_FORMAT)
    matched = pattern.match("val-accuracy=0.9777777777777777")
    assert matched is not None
    assert matched.groups() == ("val-accuracy", "0.9777777777777777")
    assert pattern.match("loss=1e-05") and pattern.match("n=3")
    assert not pattern.match("kfg: waiting for run abc (timeout=7200 s)")
    assert not pattern.match("accuracy=nan")


def test_rbac_objects_are_valid_and_bound(digits: Rendered) -> None:
    account, role, binding = _documents(digits, LAUNCHER_FILE)
    for obj in (account, role, binding):
        crds.validate(obj)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]
    job = _experiment(digits)["spec"]["trialTemplate"]["trialSpec"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def _copy_digits(tmp_path: Path, edit: str = "", replace: tuple[str, str] = ("", "")) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    for name in ("digits.ipynb", "kale.yaml"):
        (tmp_path / name).write_text((EXAMPLES / "digits" / name).read_text())
    kale = tmp_path / "kale.yaml"
    kale.write_text(kale.read_text().replace(*replace) + edit)
    return kale


def test_token_access_is_the_default_and_mounts_a_projected_token(tmp_path: Path) -> None:
    kale = _copy_digits(tmp_path, "  launcher: {image: ghcr.io/acme/kfg:1.0, timeout: 30m}\n")
    item = _render(kale, tmp_path)
    job = _experiment(item)["spec"]["trialTemplate"]["trialSpec"]
    crds.validate({**job, "metadata": {"name": "trial"}})
    pod = job["spec"]["template"]["spec"]
    token = next(v for v in pod["volumes"] if v["name"] == "kfp-token")
    [source] = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/acme/kfg:1.0"
    assert {
        "name": "KF_PIPELINES_SA_TOKEN_PATH",
        "value": "/var/run/secrets/kubeflow/pipelines/token",
    } in container["env"]
    assert {
        "name": "kfp-token",
        "mountPath": "/var/run/secrets/kubeflow/pipelines",
        "readOnly": True,
    } in container["volumeMounts"]
    assert container["args"][container["args"].index("--timeout") + 1] == "1800"
    assert "access-ml-pipeline" not in job["spec"]["template"]["metadata"]["labels"]


def test_pod_label_access_only_adds_the_label(tmp_path: Path) -> None:
    """The PodDefault then mounts the token. A volume or mount of kfg's own at the same
    name or path would make Kubeflow's PodDefault webhook reject the pod: it refuses any
    that is not identical (kubeflow/kubeflow components/admission-webhook/main.go,
    mergeVolumes and mergeVolumeMounts), and API-server defaulting (defaultMode) makes a
    pod's projected volume differ from the PodDefault's."""
    kale = _copy_digits(tmp_path, "  launcher: {kfpAccess: pod-label}\n")
    job = _experiment(_render(kale, tmp_path))["spec"]["trialTemplate"]["trialSpec"]
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["access-ml-pipeline"] == "true"
    container = template["spec"]["containers"][0]
    assert [v["name"] for v in template["spec"]["volumes"]] == ["tmp"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    assert [e["name"] for e in container["env"]] == ["HOME", "KFG_LAUNCHER_PIDFILE"]


def test_experiment_names_fit_katibs_limits() -> None:
    spec: dict[str, Any] = {"objective": {}}
    long = experiment_name("a" * 63, spec)
    assert len(long) == NAME_MAX and NAME_PATTERN.match(long)
    assert NAME_PATTERN.match(experiment_name("3d-model", spec))
    # kubeflow/katib v0.19.0 validator.go:117-131: a finished Experiment with resumePolicy
    # Never refuses any spec change, counts included, so counts are part of the name.
    assert experiment_name("p", {**spec, "maxTrialCount": 5}) != experiment_name("p", spec)
    assert experiment_name("p", spec, "2") != experiment_name("p", spec)


def test_kale_katib_metadata_renders_an_equivalent_experiment(tmp_path: Path) -> None:
    """What Kale would have sent to Katib is what kfg renders from `kfg init`'s proposal."""
    (tmp_path / ".git").mkdir()
    notebook = read_notebook(
        write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA)
    )
    proposal = propose(notebook)
    kale = tmp_path / "kale.yaml"
    kale.write_text(to_yaml(proposal.data, schema_ref="x", header=[]))
    spec = _experiment(_render(kale, tmp_path))["spec"]
    katib = copy.deepcopy(KALE_METADATA["kubeflow_notebook"]["katib_metadata"])
    assert spec["algorithm"]["algorithmName"] == katib["algorithm"]["algorithmName"]
    for key in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"):
        assert spec[key] == katib[key]
    objective = spec["objective"]
    for key in ("objectiveMetricName", "type", "goal"):
        assert objective[key] == katib["objective"][key]
    assert [p["name"] for p in spec["parameters"]] == [p["name"] for p in katib["parameters"]]
    for ours, theirs in zip(spec["parameters"], katib["parameters"], strict=True):
        assert ours["parameterType"] == theirs["parameterType"]
        expected = {**theirs["feasibleSpace"], "distribution": "uniform"}
        assert ours["feasibleSpace"] == expected


def test_trial_jobs_end_within_the_run_timeout_and_stop_their_run(tmp_path: Path) -> None:
    from kfg.render.launcher import DEADLINE_MARGIN_SECONDS, PIDFILE, PIDFILE_ENV

    job = _experiment(_render(_copy_digits(tmp_path), tmp_path))["spec"]["trialTemplate"][
        "trialSpec"
    ]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    timeout = int(args[args.index("--timeout") + 1])
    assert job["spec"]["activeDeadlineSeconds"] == timeout + DEADLINE_MARGIN_SECONDS
    pod = job["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 60
    container = pod["containers"][0]
    assert {"name": PIDFILE_ENV, "value": PIDFILE} in container["env"]
    assert PIDFILE.startswith("/tmp/")  # the writable emptyDir; the root is read-only
    assert container["lifecycle"]["preStop"]["exec"]["command"][:2] == ["sh", "-c"]

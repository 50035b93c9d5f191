"""`kfg submit` against the loopback KFP API, and the run-on-sync Job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from kfg.core.load import load_pipeline
from kfg.render.build import RUN_FILE, render
from tests import crds
from tests.conftest import EXAMPLES, REPO
from tests.launcher.fake_kfp import RUN_ID, VERSION, FakeKfp, Scenario
from tests.launcher.fake_kube import FakeKube

DIGITS = EXAMPLES / "digits" / "kale.yaml"


def _version() -> str:
    result = load_pipeline(DIGITS, root=REPO)
    assert result.pipeline and result.flow and result.notebook
    return render(result.pipeline, result.flow, result.notebook, REPO).version


def _scenario(version: str) -> Scenario:
    scenario = Scenario()
    [listed] = scenario.versions.values()
    listed[:] = [{**VERSION, "name": version, "display_name": version}]
    return scenario


def submit(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_SERVICE", "KF_"))
    }
    environment["KUBECONFIG"] = str(kubeconfig) if kubeconfig else "/nonexistent/kubeconfig"
    return subprocess.run(
        [sys.executable, "-m", "kfg", "submit", str(DIGITS), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**environment, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )


def test_submit_runs_the_rendered_version_with_defaults_and_overrides(tmp_path: Path) -> None:
    version = _version()
    with FakeKube() as kube, FakeKfp(_scenario(version), kube) as fake:
        kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", "kubeflow")
        result = submit(
            "--endpoint",
            fake.endpoint,
            "-p",
            "hidden_units=32",
            "--poll",
            "0.05",
            kubeconfig=kubeconfig,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    versions = next(r for r in fake.requests if r.path.endswith("/versions"))
    assert json.loads(versions.query["filter"][0])["predicates"][0]["string_value"] == version
    created = next(r for r in fake.requests if r.method == "POST" and r.path.endswith("/runs"))
    assert created.body["display_name"].startswith(f"{version}-")
    assert created.body["runtime_config"]["parameters"] == {
        "alpha": 0.0001,
        "hidden_units": 32,
        "learning_rate": 0.001,
        "max_iter": 300,
        "random_state": 0,
    }


def test_submit_succeeds_when_the_metrics_cannot_be_read() -> None:
    """A submitted run's outcome is the result; its metrics are printed when they can be."""
    with FakeKfp(_scenario(_version())) as fake:
        result = submit("--endpoint", fake.endpoint, "--poll", "0.05")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"run {RUN_ID} succeeded; its metrics cannot be read" in result.stderr


def test_submit_without_waiting_prints_the_run_id() -> None:
    with FakeKfp(_scenario(_version())) as fake:
        result = submit("--endpoint", fake.endpoint, "--no-wait", "--run-name", "by-hand")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{RUN_ID}\n"
    assert not [r for r in fake.requests if r.path.endswith(RUN_ID)]


def test_submit_rejects_unknown_parameters() -> None:
    result = submit("--endpoint", "http://127.0.0.1:9", "-p", "hiden_units=3")
    assert result.returncode == 2
    assert "unknown parameter `hiden_units`" in result.stderr


def test_run_on_sync_renders_one_job_per_version(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    for name in ("digits.ipynb", "kale.yaml"):
        shutil.copy(EXAMPLES / "digits" / name, tmp_path / name)
    kale = tmp_path / "kale.yaml"
    kale.write_text(kale.read_text() + "  launcher: {runOnSync: true}\n")
    result = load_pipeline(kale)
    assert result.ok and result.pipeline and result.flow and result.notebook
    item = render(result.pipeline, result.flow, result.notebook, tmp_path)
    [job] = [d for d in yaml.safe_load_all(item.package.files[RUN_FILE]) if d]
    crds.validate(job)
    name = job["metadata"]["name"]
    assert name.endswith("-run") and len(name) <= 63
    assert item.version.rsplit("-", 1)[1] in name
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--version") + 1] == item.version
    assert args[args.index("--run-name") + 1] == name
    assert "ttlSecondsAfterFinished" not in job["spec"]
    stage, run_file = RUN_FILE.split("/")
    listed = yaml.safe_load(item.package.files[f"{stage}/kustomization.yaml"])["resources"]
    assert run_file in listed

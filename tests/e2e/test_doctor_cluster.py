"""`kfg doctor` against the real API server of this tier: what is installed reads as ok,
what is not (KFP's API server, Katib's config) as missing, with the same verdicts the unit
tests get from a fake API."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES, REPO
from tests.e2e.cluster import ControlPlane


def test_doctor_reads_the_real_cluster(control_plane: ControlPlane) -> None:
    control_plane.api.namespace("team-b")  # the digits example's namespace
    result = subprocess.run(
        [sys.executable, "-m", "kfg", "doctor", str(EXAMPLES / "digits" / "kale.yaml"), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"KUBECONFIG": str(control_plane.kubeconfig), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # KFP and Katib are not installed here
    report = json.loads(result.stdout)
    status = {c["check"]: c["status"] for c in report["checks"]}
    # The CRDs this tier installs are served, with the versions kfg's objects use.
    served = [c for c, s in status.items() if s == "ok" and "pipelines.kubeflow.org" in c]
    assert served, status
    katib = next(c for c in report["checks"] if c["check"] == "API kubeflow.org/v1beta1")
    # The tier installs Katib's Experiment CRD only: doctor names what is served and what lacks.
    assert katib["status"] == "missing" and katib["detail"] == "served without trials", katib
    # What the tier does not run is reported missing, each with a fix.
    missing = [c for c in report["checks"] if c["status"] == "missing"]
    assert missing and all(c["fix"] for c in missing)
    assert any("katib" in c["check"].lower() for c in missing), status

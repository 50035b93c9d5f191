"""The launcher image's Dockerfile (no Docker engine here: its promises are checked as text)."""

from __future__ import annotations

from kfg.config.model import Launcher
from kfg.render.launcher import pod_template
from tests.conftest import REPO


def test_dockerfile_installs_kfg_and_runs_as_the_user_rendered_pods_require() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "COPY kfg /src/kfg" in text and "pip install -c /src/constraints.txt /src" in text
    assert "USER 1000:1000" in text
    security = pod_template(Launcher("img", "sa"), [], {})["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1000, 1000)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored

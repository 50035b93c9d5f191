from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

settings.register_profile(
    "kfg", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("kfg")


@pytest.fixture
def wine(tmp_path: Path) -> Path:
    """A private copy of the wine example inside its own git repository."""
    (tmp_path / ".git").mkdir()
    shutil.copy(EXAMPLES / "wine" / "wine.ipynb", tmp_path / "wine.ipynb")
    shutil.copy(EXAMPLES / "wine" / "kale.yaml", tmp_path / "kale.yaml")
    return tmp_path / "kale.yaml"

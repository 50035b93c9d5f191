from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Warm step servers (kfg.engine.warm) started by the tests' runs leave seconds after them,
# not minutes: a test session starts many, each for its own temporary repository.
os.environ.setdefault("KFG_WARM_IDLE", "5")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

settings.register_profile(
    "kfg", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("kfg")


@pytest.fixture
def wine(tmp_path: Path) -> Path:
    """A private copy of the wine example inside its own git repository, with its cells
    referred to by position as a hand-written kale.yaml does (see `positional`)."""
    (tmp_path / ".git").mkdir()
    shutil.copy(EXAMPLES / "wine" / "wine.ipynb", tmp_path / "wine.ipynb")
    text = (EXAMPLES / "wine" / "kale.yaml").read_text()
    (tmp_path / "kale.yaml").write_text(positional(text, tmp_path / "wine.ipynb"))
    return tmp_path / "kale.yaml"


def positional(text: str, notebook: Path) -> str:
    """The example's kale.yaml with positions for ids and no `cellHashes`: what most checks
    are about, on the same lines as before the example was anchored to ids."""
    ids = {
        cell["id"]: index
        for index, cell in enumerate(json.loads(notebook.read_text())["cells"], start=1)
    }
    text = re.sub(r'"id:([\w-]+)\.\.id:([\w-]+)"', lambda m: f'"{ids[m[1]]}-{ids[m[2]]}"', text)
    text = re.sub(r'"id:([\w-]+)"', lambda m: str(ids[m[1]]), text)
    return text.split("  cellHashes:\n")[0]

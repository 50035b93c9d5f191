"""The real yaml-language-server flags kale.yaml mistakes through kfg's schema modeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.editor.lsp import Client
from tests.npm import NODE, install

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
SERVER_VERSION = "1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yaml-language-server from npm, installed once for the tests."""
    modules = install(f"yaml-language-server@{SERVER_VERSION}", tmp_path_factory.mktemp("yls"))
    return modules / "yaml-language-server" / "bin" / "yaml-language-server"


def test_modeline_brings_schema_diagnostics(server: Path, tmp_path: Path) -> None:
    schema = (REPO / "schemas" / "kale.schema.json").as_uri()
    document = tmp_path / "kale.yaml"
    text = (
        f"# yaml-language-server: $schema={schema}\n"
        "apiVersion: kfg.dev/v1alpha1\n"
        "kind: NotebookPipeline\n"
        "metadata:\n"
        "  name: demo\n"
        "spec:\n"
        "  notebook: n.ipynb\n"
        "  stepz: []\n"
        "  steps:\n"
        "    - name: load\n"
        "      cells: [1]\n"
        "      retries: many\n"
    )
    document.write_text(text)
    assert NODE is not None
    client = Client([NODE, str(server), "--stdio"])
    try:
        ident = client.send(
            "initialize",
            {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}},
            request=True,
        )
        client.wait_for(lambda m: m.get("id") == ident)
        client.send("initialized", {})
        client.send(
            "workspace/didChangeConfiguration",
            {"settings": {"yaml": {"validate": True, "schemaStore": {"enable": False}}}},
        )
        client.send(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": document.as_uri(),
                    "languageId": "yaml",
                    "version": 1,
                    "text": text,
                }
            },
        )
        published = client.wait_for(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == document.as_uri()
                and m["params"]["diagnostics"]
            )
        )
    finally:
        client.close()
    diagnostics = {
        (d["range"]["start"]["line"], d["message"]) for d in published["params"]["diagnostics"]
    }
    lines = {line for line, _ in diagnostics}
    assert 7 in lines, diagnostics  # `stepz`: a key the schema does not allow
    assert 11 in lines, diagnostics  # `retries: many`: a string where an integer belongs
    messages = " ".join(message for _, message in diagnostics)
    assert "stepz" in messages and "not allowed" in messages
    assert "Incorrect type" in messages and "integer" in messages

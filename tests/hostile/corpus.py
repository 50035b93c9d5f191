"""Hand-made hostile inputs, one class at a time (issue 16's classes)."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.hostile.harness import KALE, NOTEBOOK

PAYLOADS = [
    "$(touch pwned)",
    "`touch pwned`",
    "a; touch pwned",
    "'; touch pwned; '",
    "a\ntouch pwned",
    "--help",
    "a > pwned",
]


def kale(replace: str, by: str) -> str:
    assert replace in KALE, replace
    return KALE.replace(replace, by, 1)


def _q(value: str) -> str:
    return json.dumps(value)  # a YAML double-quoted scalar


# (id, kale.yaml content) that must be refused with a line naming kale.yaml and a line.
BROKEN_YAML: list[tuple[str, str | bytes]] = [
    ("empty", ""),
    ("only-comment", "# nothing\n"),
    ("unclosed-flow", "apiVersion: kfg.dev/v1alpha1\nspec: {steps: [\n"),
    ("tab-indent", "spec:\n\tsteps: []\n"),
    ("bad-indent", KALE.replace("  notebook:", " notebook:")),
    ("list-document", "- a\n- b\n"),
    ("scalar-document", "just a string\n"),
    ("duplicate-key", KALE + "metadata:\n  name: other\n"),
    ("two-documents", KALE + "---\n" + KALE),
    ("python-tag", "!!python/object/apply:os.system ['touch pwned']\n"),
    ("custom-tag", KALE.replace("name: tiny", "name: !secret tiny")),
    ("binary", b"\x00\x01\x02\xff\xfe"),
    ("bad-utf8", KALE.encode().replace(b"tiny.ipynb", b"tiny\xff.ipynb")),
    ("utf16-bom", "\ufeff".encode("utf-16") + KALE.encode("utf-16")),
    (
        "billion-laughs",
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}]\n"
            for i in range(8)
        ),
    ),
    ("deep-nesting", "spec: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("deep-mapping", "spec: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n"),
    ("anchor-alias-loop", "a: &a\n  b: *a\n"),
    ("merge-key", KALE.replace("  image: python:3.11-slim", "  <<: {image: x}")),
    ("huge-int-key", KALE.replace("cells: [2]", "cells: [" + "9" * 5000 + "]")),
    ("null-bytes-in-string", KALE.replace("name: tiny", 'name: "ti\\0ny"')),
]

# Values of kale.yaml fields a careless or hostile author could write: refused (False), or
# accepted if valid (None: either, but never an internal error).
HOSTILE_VALUES: list[tuple[str, str, bool | None]] = [
    ("name-newline", kale("name: tiny", 'name: "tiny\\n"'), False),
    ("name-upper", kale("name: tiny", "name: Tiny"), False),
    ("name-long", kale("name: tiny", "name: " + "a" * 300), False),
    ("name-dots", kale("name: tiny", "name: ../../etc"), False),
    ("name-int", kale("name: tiny", "name: 12"), False),
    ("name-empty", kale("name: tiny", 'name: ""'), False),
    ("name-null", kale("name: tiny", "name: null"), False),
    ("notebook-absolute", kale("notebook: tiny.ipynb", "notebook: /etc/passwd"), False),
    ("notebook-escape", kale("notebook: tiny.ipynb", "notebook: ../../../etc/passwd"), False),
    ("notebook-missing", kale("notebook: tiny.ipynb", "notebook: nope.ipynb"), False),
    ("notebook-dir", kale("notebook: tiny.ipynb", "notebook: ."), False),
    ("notebook-list", kale("notebook: tiny.ipynb", "notebook: [a]"), False),
    ("image-upper", kale("image: python:3.11-slim", "image: Python:3.11"), False),
    ("image-space", kale("image: python:3.11-slim", 'image: "python 3"'), False),
    ("image-empty", kale("image: python:3.11-slim", 'image: ""'), False),
    ("cells-negative", kale("cells: [2]", "cells: [-1]"), False),
    ("cells-zero", kale("cells: [2]", "cells: [0]"), False),
    ("cells-beyond", kale("cells: [2]", "cells: [99999]"), False),
    ("cells-open-range", kale("cells: [2]", 'cells: ["2-"]'), False),
    ("cells-reverse-range", kale("cells: [2]", 'cells: ["3-2"]'), False),
    ("cells-float", kale("cells: [2]", "cells: [2.5]"), False),
    ("cells-integral-float", kale("cells: [2]", "cells: [2.0]"), None),
    ("notebook-nul", kale("notebook: tiny.ipynb", 'notebook: "tiny\\0.ipynb"'), False),
    ("timeout-huge", kale("cells: [2]", "cells: [2]\n      timeout: 999999999999999999999"), False),
    (
        "timeout-days-huge",
        kale("cells: [2]", "cells: [2]\n      timeout: 99999999999999999d"),
        False,
    ),
    ("timeout-integral-float", kale("cells: [2]", "cells: [2]\n      timeout: 60.0"), None),
    ("cells-bool", kale("cells: [2]", "cells: [true]"), False),
    ("cells-huge", kale("cells: [2]", "cells: [1e400]"), False),
    ("cells-overlap", kale("cells: [3]", "cells: [2]"), False),
    ("cells-parameter-cell", kale("cells: [2]", "cells: [1]"), False),
    ("steps-empty", KALE.split("  steps:")[0] + "  steps: []\n", False),
    ("steps-dup", kale("name: score\n", "name: prepare\n"), False),
    ("step-name-newline", kale("name: prepare", 'name: "prepare\\n"'), False),
    ("step-name-keyword", kale("name: prepare", "name: import"), None),
    ("step-name-payload", kale("name: prepare", "name: " + _q("$(touch pwned)")), False),
    ("cpu-nan", kale("cells: [2]", "cells: [2]\n      resources: {cpu: .nan}"), False),
    ("cpu-inf", kale("cells: [2]", "cells: [2]\n      resources: {cpu: .inf}"), False),
    ("cpu-huge", kale("cells: [2]", "cells: [2]\n      resources: {cpu: 1e100}"), False),
    ("cpu-negative", kale("cells: [2]", "cells: [2]\n      resources: {cpu: -1}"), False),
    ("memory-9E", kale("cells: [2]", "cells: [2]\n      resources: {memory: 9E}"), None),
    ("memory-words", kale("cells: [2]", "cells: [2]\n      resources: {memory: lots}"), False),
    ("gpu-count-huge", kale("cells: [2]", "cells: [2]\n      resources: {gpu: 1e30}"), False),
    ("timeout-negative", kale("cells: [2]", "cells: [2]\n      timeout: -5"), False),
    ("timeout-words", kale("cells: [2]", "cells: [2]\n      timeout: forever"), False),
    ("retries-huge", kale("cells: [2]", "cells: [2]\n      retries: 1000000000000"), False),
    ("after-self", kale("cells: [2]", "cells: [2]\n      after: [prepare]"), False),
    ("after-unknown", kale("cells: [2]", "cells: [2]\n      after: [nope]"), False),
    ("after-cycle", kale("cells: [2]", "cells: [2]\n      after: [score]"), False),
    ("env-bad-name", kale("cells: [2]", 'cells: [2]\n      env: {"A=B": x}'), False),
    ("env-int", kale("cells: [2]", "cells: [2]\n      env: {A: 1}"), None),
    ("metric-newline", kale("{name: score,", '{name: "score\\nx=1",'), False),
    ("metric-variable-payload", kale("variable: score}", "variable: \"__import__('os')\"}"), False),
    ("metric-unknown-variable", kale("variable: score}", "variable: nope}"), False),
    ("parameters-not-cell", kale("parameters: {cell: 1}", "parameters: {cell: 99}"), False),
    ("parameters-list", kale("parameters: {cell: 1}", "parameters: [1]"), False),
    ("unknown-key", kale("  image:", "  imagee: x\n  image:"), False),
    ("api-version", kale("apiVersion: kfg.dev/v1alpha1", "apiVersion: v9"), False),
    ("kind", kale("kind: NotebookPipeline", "kind: Pod"), False),
    (
        "spec-null",
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\n"
        "metadata: {name: tiny}\nspec: null\n",
        False,
    ),
    ("metadata-list", kale("metadata:\n  name: tiny", "metadata: [tiny]"), False),
    ("description-huge", kale("  image:", "  description: " + "x" * 200_000 + "\n  image:"), None),
    (
        "many-steps",
        KALE.split("  steps:")[0]
        + "  steps:\n"
        + "".join(f"    - {{name: s{i}, cells: [2]}}\n" for i in range(400)),
        False,
    ),
]

# Shell metacharacters in every string field that could reach a command line. Each must be
# refused or, where kfg accepts it, never appear inside a shell script it renders.
SHELL_FIELDS: list[tuple[str, str]] = []
for number, payload in enumerate(PAYLOADS):
    quoted = _q(payload)
    SHELL_FIELDS += [
        (
            f"packages-{number}",
            kale("  image:", f"  packages: [{_q('six==1.16.0; ' + payload)}]\n  image:"),
        ),
        (f"package-name-{number}", kale("  image:", f"  packages: [{quoted}]\n  image:")),
        (f"image-{number}", kale("image: python:3.11-slim", f"image: {quoted}")),
        (f"description-{number}", kale("  image:", f"  description: {quoted}\n  image:")),
        (f"env-{number}", kale("cells: [2]", f"cells: [2]\n      env: {{MODE: {quoted}}}")),
        (f"label-{number}", kale("cells: [2]", f"cells: [2]\n      labels: {{team: {quoted}}}")),
        (
            f"annotation-{number}",
            kale("cells: [2]", f"cells: [2]\n      annotations: {{note: {quoted}}}"),
        ),
        (
            f"claim-{number}",
            kale(
                "  image:",
                f"  volumes: [{{name: data, claim: {quoted}, mountPath: /data}}]\n  image:",
            ),
        ),
        (
            f"mount-{number}",
            kale(
                "  image:",
                f"  volumes: [{{name: data, claim: data, mountPath: {quoted}}}]\n  image:",
            ),
        ),
        (f"namespace-{number}", kale("  name: tiny", f"  name: tiny\n  namespace: {quoted}")),
        (
            f"secret-{number}",
            kale("cells: [2]", f"cells: [2]\n      secrets: [{{secret: {quoted}, key: a}}]"),
        ),
    ]


def notebook(**changes: Any) -> dict[str, Any]:
    book = copy.deepcopy(NOTEBOOK)
    book.update(changes)
    return book


def _cells(*cells: Any) -> dict[str, Any]:
    return notebook(cells=list(cells))


_CELL = NOTEBOOK["cells"]
HOSTILE_NOTEBOOKS: list[tuple[str, object]] = [
    ("not-json", b"{not json"),
    ("empty-file", b""),
    ("json-array", b"[]"),
    ("json-string", b'"notebook"'),
    ("bad-utf8", b'{"cells": "\xff"}'),
    ("nbformat-3", notebook(nbformat=3)),
    ("nbformat-99", notebook(nbformat=99)),
    ("nbformat-string", notebook(nbformat="4")),
    ("cells-missing", {k: v for k, v in NOTEBOOK.items() if k != "cells"}),
    ("cells-dict", notebook(cells={"a": 1})),
    ("cells-empty", notebook(cells=[])),
    ("cell-not-dict", _cells(1, 2, 3)),
    ("cell-type-unknown", _cells(*_CELL[:2], {**_CELL[2], "cell_type": "weird"})),
    ("cell-source-int", _cells(*_CELL[:2], {**_CELL[2], "source": 42})),
    ("cell-source-list-of-int", _cells(*_CELL[:2], {**_CELL[2], "source": [1, 2]})),
    ("cell-duplicate-id", _cells(*_CELL[:2], {**_CELL[2], "id": "c1"})),
    ("cell-id-payload", _cells(*_CELL[:2], {**_CELL[2], "id": "$(touch pwned)"})),
    ("cell-syntax-error", _cells(*_CELL[:2], {**_CELL[2], "source": "def (:\n"})),
    ("cell-null-byte", _cells(*_CELL[:2], {**_CELL[2], "source": "x = 1\x00"})),
    ("cell-huge-line", _cells(*_CELL[:2], {**_CELL[2], "source": "x = " + "1+" * 200_000 + "1"})),
    (
        "cell-deep-expression",
        _cells(*_CELL[:2], {**_CELL[2], "source": "x = " + "(" * 5000 + "1" + ")" * 5000}),
    ),
    ("metadata-list", notebook(metadata=[1])),
    ("cell-lone-surrogate", _cells(*_CELL[:2], {**_CELL[2], "source": "x = '\ud800'"})),
    ("many-cells", _cells(*_CELL, *[{**_CELL[1], "id": f"x{i}"} for i in range(5_000)])),
    ("deep-json", b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
]

# ResourceLists on `kfg fn render`'s stdin.
NOTEBOOK_PIPELINE = KALE.replace(
    "metadata:\n", "metadata:\n  annotations: {config.kubernetes.io/path: kale.yaml}\n"
)
RESOURCE_LISTS: list[tuple[str, str | bytes]] = [
    ("empty", ""),
    ("not-yaml", "{"),
    ("list", "- a\n"),
    ("wrong-kind", "apiVersion: v1\nkind: Pod\n"),
    ("items-not-list", "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: 3\n"),
    ("items-scalars", "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [1, a]\n"),
    (
        "function-config-list",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nfunctionConfig: [1]\nitems: []\n",
    ),
    (
        "item-metadata-list",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
        "- {apiVersion: kfg.dev/v1alpha1, kind: NotebookPipeline, metadata: [1], spec: {}}\n",
    ),
    (
        "config-map-paths-outside",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig:\n"
        "  {apiVersion: v1, kind: ConfigMap, metadata: {name: c},"
        " data: {paths: '../../etc/passwd /etc/hostname'}}\n",
    ),
    (
        "hostile-pipeline",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- "
        + kale("name: tiny", 'name: "tiny\\n"').replace("\n", "\n  "),
    ),
    (
        "pipeline-without-notebook",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n"
        "items:\n- " + NOTEBOOK_PIPELINE.replace("\n", "\n  "),
    ),
    ("deep", "items: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("billion-laughs", BROKEN_YAML[14][1]),
    ("binary", b"\x00\xff\xfe"),
    (
        "huge",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n"
        + "- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}, data: {a: b}}\n" * 400_000,
    ),
]

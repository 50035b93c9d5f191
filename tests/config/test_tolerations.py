"""Tolerations the Kubernetes API server would refuse are refused at validate time.

Each case encodes a rule of ValidateTolerations, read in kubernetes/kubernetes
pkg/apis/core/validation/validation.go (v1.34): the pod of a step with such a toleration
is rejected when KFP creates it, so kfg reports it on the kale.yaml line instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kfg.core.load import load_pipeline

GPU_STEP = "    - name: random-forest\n      cells: [17]\n"


def _with_toleration(wine: Path, toleration: str) -> Path:
    text = wine.read_text()
    assert GPU_STEP in text
    wine.write_text(text.replace(GPU_STEP, f"{GPU_STEP}      tolerations:\n{toleration}", 1))
    return wine


def _line_of(path: Path, text: str) -> int:
    (line,) = [i for i, row in enumerate(path.read_text().splitlines(), 1) if text in row]
    return line


REJECTED = [
    # `tolerationSeconds != nil && effect != NoExecute` -> "effect must be 'NoExecute'..."
    (
        "        - {key: spot, operator: Exists, effect: NoSchedule, tolerationSeconds: 300}\n",
        "tolerationSeconds",
        "`tolerationSeconds` needs `effect: NoExecute`, got `effect: NoSchedule`",
    ),
    (
        "        - key: spot\n          operator: Exists\n          tolerationSeconds: 300\n",
        "tolerationSeconds",
        "`tolerationSeconds` needs `effect: NoExecute`, got no effect",
    ),
    # `case TolerationOpExists: if len(Value) > 0` -> "value must be empty when operator is Exists"
    (
        "        - key: dedicated\n          operator: Exists\n          value: ml\n",
        "value: ml",
        "`value` must be empty with `operator: Exists`",
    ),
    # `len(Key) == 0 && Operator != Exists` -> "operator must be Exists when key is empty"
    (
        "        - operator: Equal\n          value: ml\n",
        "operator: Equal",
        "a toleration without `key` must have `operator: Exists`",
    ),
    (
        "        - {effect: NoSchedule}\n",
        "{effect: NoSchedule}",
        "`operator` is Equal by default",
    ),
]


@pytest.mark.parametrize(("toleration", "where", "fragment"), REJECTED)
def test_tolerations_the_api_server_rejects_are_errors_on_their_line(
    wine: Path, toleration: str, where: str, fragment: str
) -> None:
    path = _with_toleration(wine, toleration)
    result = load_pipeline(path)
    assert not result.ok
    (finding,) = result.diagnostics
    assert finding.code == "toleration"
    assert fragment in finding.message
    assert finding.line == _line_of(path, where)


# Formats that ValidateLabelName (key) and IsValidLabelValue (value with Equal) reject.
@pytest.mark.parametrize(
    ("toleration", "fragment"),
    [
        ("        - {key: 'gpu type', operator: Exists}\n", "must be a taint key"),
        ("        - {key: dedicated, value: 'ml team'}\n", "must be a taint value"),
        ("        - {key: dedicated, value: " + "x" * 64 + "}\n", "must be a taint value"),
    ],
)
def test_malformed_keys_and_values_fail_the_schema(
    wine: Path, toleration: str, fragment: str
) -> None:
    result = load_pipeline(_with_toleration(wine, toleration))
    assert not result.ok
    assert any(fragment in d.message for d in result.diagnostics), result.diagnostics


@pytest.mark.parametrize(
    "toleration",
    [
        "        - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,"
        " tolerationSeconds: 60}\n",
        "        - {operator: Exists}\n",
        "        - {key: '', operator: Exists, value: ''}\n",
        "        - {key: nvidia.com/gpu, operator: Equal, value: a100, effect: NoSchedule}\n",
        "        - {key: dedicated, value: ''}\n",
    ],
)
def test_tolerations_the_api_server_accepts_pass(wine: Path, toleration: str) -> None:
    result = load_pipeline(_with_toleration(wine, toleration))
    assert result.ok, result.diagnostics
    assert result.diagnostics == []

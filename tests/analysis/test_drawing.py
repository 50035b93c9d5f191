from __future__ import annotations

from kfg.analysis.dataflow import Edge, Flow, StepFlow
from kfg.analysis.drawing import as_dot, as_mermaid, as_text

FLOW = Flow(
    steps=(
        StepFlow("load", {}, ("raw",), ("seed",), ()),
        StepFlow("train", {"raw": "load"}, (), ("lr",), ("load",)),
        StepFlow("report", {}, (), (), ("train",)),
    ),
    edges=(Edge("load", "train", ("raw",)), Edge("train", "report", ())),
)


def test_text_lists_steps_in_order_with_edges_and_parameters() -> None:
    assert as_text("p", FLOW) == (
        "p: 3 steps, 2 edges\n"
        "  load\n"
        "    parameters: seed\n"
        "  train\n"
        "    <- load: raw\n"
        "    parameters: lr\n"
        "  report\n"
        "    <- train: (after, no data)\n"
    )


def test_mermaid_uses_safe_ids_and_labels_edges() -> None:
    text = as_mermaid("p", FLOW)
    assert text.splitlines() == [
        "flowchart TD",
        '  s0["load<br/><small>seed</small>"]',
        '  s1["train<br/><small>lr</small>"]',
        '  s2["report"]',
        '  s0 -->|"raw"| s1',
        "  s1 -.-> s2",
    ]


def test_dot_quotes_every_id() -> None:
    text = as_dot('my "p"', FLOW)
    assert text.startswith('digraph "my \\"p\\"" {')
    assert '"load" -> "train" [label="raw"];' in text
    assert '"train" -> "report" [style=dashed];' in text
    assert '"load" [label="load\\n(seed)"];' in text

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfg.kube.quantity import (
    INT64_MAX,
    kfp_cpu,
    kfp_memory,
    parse_duration,
    parse_quantity,
    too_large,
)

# kfp's own checks (kfp/dsl/pipeline_task.py), which kfg's output must pass.
KFP_CPU = re.compile(r"([0-9]*[.])?[0-9]+m?$")
KFP_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki){0,1}$")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Decimal(2)),
        ("500m", Decimal("0.5")),
        ("4Gi", Decimal(4 << 30)),
        ("1.5Gi", Decimal(3 << 29)),
        ("1e3", Decimal(1000)),
        ("512M", Decimal(512_000_000)),
        (".5", Decimal("0.5")),
        ("9E", Decimal(9 * 10**18)),  # exa, not an exponent without digits
        ("1e-3", Decimal("0.001")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "2 Gi", "-1", "1Gb", "abc", "1.2.3"])
def test_parse_quantity_rejects(text: str) -> None:
    assert parse_quantity(text) is None


quantities = st.builds(
    lambda number, suffix: f"{number}{suffix}",
    st.decimals(min_value=0, max_value=10_000, places=3, allow_nan=False).map(str),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e2", "E1"]),
)


@given(quantities)
def test_cpu_is_rewritten_only_as_far_as_kfp_needs(text: str) -> None:
    value = parse_quantity(text)
    if value is None:
        return
    out = kfp_cpu(text)
    assert KFP_CPU.match(out)
    got = parse_quantity(out)
    assert got is not None and value <= got < value + Decimal("0.001")


@given(quantities)
def test_memory_is_rewritten_to_bytes_when_kfp_would_refuse_it(text: str) -> None:
    value = parse_quantity(text)
    if value is None:
        return
    out = kfp_memory(text)
    assert KFP_MEMORY.match(out)
    got = parse_quantity(out)
    assert got is not None and value <= got < value + 1


def test_plain_forms_are_kept() -> None:
    assert kfp_cpu("1.5") == "1.5" and kfp_cpu("250m") == "250m"
    assert kfp_cpu("1e1") == "10000m"
    assert kfp_memory("2Gi") == "2Gi" and kfp_memory("1.5Gi") == str(3 << 29)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("1h30m", 5400.0), ("250ms", 0.25), (45, 45.0), ("2d", 172800.0)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1 h", "h", "10x", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


# kubernetes/apimachinery pkg/api/resource/quantity.go: the grammar of a quantity.
QUANTITY_TEXT = r"\A\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3}|[KMGTPE]i|[numkMGTPE])?\Z"


@given(st.from_regex(QUANTITY_TEXT))
def test_every_quantity_the_grammar_allows_parses(text: str) -> None:
    amount = parse_quantity(text)
    assert amount is not None and amount >= 0


def test_amounts_beyond_int64_are_too_large() -> None:
    assert not too_large("memory", Decimal(INT64_MAX))
    assert too_large("memory", Decimal(INT64_MAX + 1))
    assert not too_large("cpu", Decimal(INT64_MAX // 1000))
    assert too_large("cpu", Decimal(INT64_MAX) / 1000 + 1)

"""Kubernetes resource quantities and durations, parsed the way Kubernetes reads them."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"^\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_quantity(value: str | int | float) -> Decimal | None:
    """The quantity as a number of base units (cores, bytes), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value)) if value >= 0 else None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    try:
        number = Decimal(match.group("number"))
    except InvalidOperation:
        return None
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if len(suffix) > 1 and suffix[0] in "eE":  # an exponent; a lone `E` is exa
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * (Decimal(10) ** _DECIMAL[suffix])


# Kubernetes keeps a quantity's value in an int64 (resource.Quantity's Value and MilliValue):
# CPU is scheduled in millicores and memory in bytes, so larger amounts cannot be honoured.
INT64_MAX = (1 << 63) - 1


def too_large(kind: str, amount: Decimal) -> bool:
    """Whether `amount` of cpu (cores) or of bytes is beyond what Kubernetes can hold."""
    units = amount * 1000 if kind == "cpu" else amount
    return units > INT64_MAX


def parse_duration(value: str | int) -> float | None:
    """Seconds in `1h30m`, `90s` or an integer number of seconds; None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


# What kfp's task methods accept, which is narrower than what Kubernetes accepts.
_KFP_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
_KFP_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")


def kfp_cpu(value: str) -> str:
    """A CPU quantity in a form kfp accepts: as written, or in whole millicores (rounded up).

    Kubernetes itself keeps CPU to the millicore, so nothing is lost.
    """
    if _KFP_CPU.match(value):
        return value
    cores = parse_quantity(value)
    if cores is None:
        raise ValueError(f"`{value}` is not a CPU quantity")
    return f"{math.ceil(cores * 1000)}m"


def kfp_memory(value: str) -> str:
    """A memory quantity in a form kfp accepts: as written, or in whole bytes (rounded up)."""
    if _KFP_MEMORY.match(value):
        return value
    size = parse_quantity(value)
    if size is None:
        raise ValueError(f"`{value}` is not a memory quantity")
    return str(math.ceil(size))

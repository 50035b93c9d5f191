"""Kubernetes names, derived in one place so every command agrees on them."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_MAX = 63


def is_dns_label(name: str) -> bool:
    return len(name) <= DNS_LABEL_MAX and bool(DNS_LABEL.match(name))


def dns_label(text: str, fallback: str = "step", max_length: int = DNS_LABEL_MAX) -> str:
    """The closest DNS-1123 label to `text`: `Load Data_v2!` -> `load-data-v2`."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = slug[:max_length].strip("-")
    return slug or fallback


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... whichever is not taken yet; records the result."""
    candidate, n = name, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate = name[: DNS_LABEL_MAX - len(suffix)].rstrip("-") + suffix
        n += 1
    taken.add(candidate)
    return candidate

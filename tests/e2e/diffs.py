"""Compare what was sent to the API server with what it stored or would store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kfg.kube.quantity import parse_quantity


def wave(obj: dict[str, Any]) -> int:
    """Argo CD's sync wave, the order kfg asks for (Pipelines before their versions)."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def _same_scalar(sent: Any, stored: Any) -> bool:
    if sent == stored and type(sent) is type(stored):
        return True
    # The API server writes resource quantities in canonical form (`0.5` is stored as `500m`).
    if isinstance(sent, (str, int, float)) and isinstance(stored, (str, int, float)):
        a, b = parse_quantity(sent), parse_quantity(stored)
        return a is not None and a == b and isinstance(stored, str)
    return False


def lost(sent: Any, stored: Any, path: str = "") -> Iterator[str]:
    """Every place where a value that was sent is absent or different in what was stored.

    Fields the server adds (defaults, metadata) are not losses; a field the structural schema
    pruned, or a value a webhook or defaulting rewrote, is."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            yield f"{path or '.'}: sent an object, stored {stored!r}"
            return
        for key, value in sent.items():
            if key not in stored:
                yield f"{path}.{key}: dropped"
            else:
                yield from lost(value, stored[key], f"{path}.{key}")
    elif isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            yield f"{path}: sent {len(sent)} items, stored {stored!r}"
            return
        for index, (a, b) in enumerate(zip(sent, stored, strict=False)):
            yield from lost(a, b, f"{path}[{index}]")
    elif not _same_scalar(sent, stored):
        yield f"{path}: sent {sent!r}, stored {stored!r}"


def added(sent: Any, stored: Any, path: str = "") -> Iterator[str]:
    """Every place where the stored object holds something that was not sent."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        for key, value in stored.items():
            if key not in sent:
                yield f"{path}.{key}: added {value!r}"
            else:
                yield from added(sent[key], value, f"{path}.{key}")
    elif isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        for index, (a, b) in enumerate(zip(sent, stored, strict=False)):
            yield from added(a, b, f"{path}[{index}]")

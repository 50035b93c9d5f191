"""Kubernetes names, derived in one place so every command agrees on them."""

from __future__ import annotations

import hashlib
import json
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


HASH_LENGTH = 8


def content_hash(content: object) -> str:
    """A short, stable hash of JSON-like content (key order and whitespace do not matter)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def versioned(name: str, digest: str, max_length: int = DNS_LABEL_MAX) -> str:
    """`name-<digest>`, shortening `name` so the result stays within `max_length`.

    Kubeflow refuses changes to a PipelineVersion's spec and Katib to an Experiment's, so
    their names carry a hash of their content: a changed spec is a new object.
    """
    room = max_length - len(digest) - 1
    return f"{name[:room].rstrip('-')}-{digest}"


# Component inputs and outputs: parameters keep their names, artifacts carry a prefix, so a
# variable and a parameter of the same name never collide.
ARTIFACT_PREFIXES = ("in_", "out_", "kfg_")


def input_name(variable: str) -> str:
    return f"in_{variable}"


def output_name(variable: str) -> str:
    return f"out_{variable}"


def snapshot_name(claim: str, version: str) -> str:
    """The VolumeSnapshot of `claim` at data version `version` (a DNS-1123 subdomain)."""
    return f"{claim}-{version}"[:253].rstrip("-.")


# A KFP run id is a UUID: 36 characters.
RUN_ID_LENGTH = 36


def shared_claim(volume: str, digest: str) -> str:
    """The claim that every run reading one data version of `volume` restores and shares.

    The KFP 2.17.0 driver names the pod's volume after the claim
    (backend/src/v2/driver/k8s.go, makeVolumeMountPatch), so it must be a DNS-1123 label.
    """
    return versioned(f"kfg-{volume}", digest)


def run_claim_prefix(volume: str) -> str:
    """The claim one run restores for itself is this, `-`, then the run's id (a label)."""
    return dns_label(f"kfg-{volume}", max_length=DNS_LABEL_MAX - RUN_ID_LENGTH - 1)


def run_snapshot_prefix(claim: str, step: str) -> str:
    """The VolumeSnapshot taken after `step` is this, `-`, then the run's id (a subdomain)."""
    return f"{claim}-{step}"[: 253 - RUN_ID_LENGTH - 1].rstrip("-.")

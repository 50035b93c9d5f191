"""pip requirements from kale.yaml, as they may safely reach a pod's install line.

kfp writes each requirement into the `sh -c` script that installs a step's packages with
Python's `repr`, which picks single quotes unless the text holds one; a requirement with a
single quote is then double-quoted, and the shell expands `$(...)` inside it. So kfg accepts
only what PEP 508 allows (parsed by `packaging`), refuses marker values and URLs carrying
characters that no version, platform name or URL needs, and hands kfp the normalised form,
which writes markers with double quotes: no single quote reaches `repr`, so every package is
single-quoted in the shell and nothing in it is expanded.
"""

from __future__ import annotations

import re

# `name==1.2.3` or `name[extra]==1.2.3`: a pin with nothing else to parse, the common case,
# checked without importing packaging's parser (about 50 ms).
PINNED = re.compile(
    r"\A[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*\])?"
    r"==[0-9][A-Za-z0-9.+!_-]*\Z"
)
# What a marker compares with: versions, platform and implementation names.
_MARKER_VALUE = re.compile(r"\A[A-Za-z0-9 ._+*!~<>=,-]*\Z")
_UNSAFE = re.compile(r"['\"`$\\\x00-\x1f\x7f]")


class RequirementError(ValueError):
    """Not a requirement kfg will install; the message says why."""


def normalize(text: str) -> tuple[str, bool]:
    """The requirement as kfg hands it to kfp, and whether it pins one version."""
    if PINNED.match(text):
        return text, True
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise RequirementError(f"`{text}` is not a pip requirement: {exc}") from None
    if requirement.marker is not None:
        # str(marker) writes every value between double quotes.
        for value in re.findall(r'"([^"]*)"', str(requirement.marker)):
            if not _MARKER_VALUE.match(value):
                raise RequirementError(
                    f"`{text}`: marker value `{value}` is not a version or platform name"
                )
    if requirement.url is not None and _UNSAFE.search(requirement.url):
        raise RequirementError(f"`{text}`: the URL holds a quote, `$`, a backslash or a control")
    normalized = str(requirement)
    if "'" in normalized or "\\" in normalized or not normalized.isprintable():
        raise RequirementError(f"`{text}` holds characters no requirement needs")
    pinned = requirement.url is not None or any(
        s.operator in ("==", "===") and "*" not in s.version for s in requirement.specifier
    )
    return normalized, pinned

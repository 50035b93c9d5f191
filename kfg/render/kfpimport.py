"""How kfg imports kfp: once, without kfp's REST and Kubernetes clients."""

from __future__ import annotations

import os
import sys


def import_kfp_without_its_client() -> None:
    """Import the kfp package without `kfp.Client` and the Kubernetes API client.

    `import kfp` also imports its REST client, which imports the `kubernetes` package:
    two thirds of a second that rendering never uses. kfp skips those imports when its
    executor's `_KFP_RUNTIME` flag is set; the flag is set only while the top-level package
    is imported, so `kfp.dsl` and `kfp.compiler` still load completely.
    """
    if "kfp" in sys.modules:
        return
    previous = os.environ.get("_KFP_RUNTIME")
    os.environ["_KFP_RUNTIME"] = "true"
    try:
        import kfp  # noqa: F401
    finally:
        if previous is None:
            del os.environ["_KFP_RUNTIME"]
        else:
            os.environ["_KFP_RUNTIME"] = previous

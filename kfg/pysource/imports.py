"""Which modules notebook code imports, and which pip distributions provide them.

A step runs in its image plus its `packages`; a module the notebook imports from neither
fails in every pod while it works on the laptop that has it installed. These facts let
`kfg validate` warn before that, and `kfg init` propose `packages:` pinned to the versions
installed here.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType

# Import names whose distribution is named otherwise, for when the distribution is not
# installed here (packages_distributions() knows the installed ones).
KNOWN_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "google.protobuf": "protobuf",
    "tensorflow_datasets": "tensorflow-datasets",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
}


@dataclass(frozen=True)
class Import:
    module: str  # the top-level module: `sklearn` for `from sklearn.svm import SVC`
    line: int


def _guarded(node: ast.Try) -> bool:
    """`try: import x / except ImportError:` tolerates a missing module."""
    return any(
        handler.type is None
        or any(
            isinstance(name, ast.Name)
            and name.id in ("ImportError", "ModuleNotFoundError", "Exception")
            for name in (
                handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            )
        )
        for handler in node.handlers
    )


def imports(tree: ast.Module) -> list[Import]:
    """Absolute imports of third-party or standard modules, outside `try/except ImportError`."""
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Try) and _guarded(node):
            for child in (*node.handlers, *node.orelse, *node.finalbody):
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name.split(".")[0], node.lineno) for a in node.names)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module != "__future__"
        ):
            found.append(Import(node.module.split(".")[0], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def is_stdlib(module: str) -> bool:
    return module in sys.stdlib_module_names or module in sys.builtin_module_names


def canonical(distribution: str) -> str:
    """PEP 503 normalisation: `Scikit_Learn` and `scikit-learn` are one distribution."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _metadata() -> ModuleType:
    """importlib.metadata, imported on first use (about 10 ms): a pipeline whose packages
    name every module it imports never needs it, and `kfg run` of a cached one stays quick."""
    import importlib.metadata

    return importlib.metadata


@cache
def _installed() -> dict[str, list[str]]:
    return dict(_metadata().packages_distributions())


def distributions(module: str) -> list[str]:
    """The distributions that provide `module`: installed ones, else the usual name.

    The usual name is tried first with one metadata lookup; mapping every installed
    distribution's files (`packages_distributions`, about 0.4 s) is left for modules whose
    distribution goes by another name, so `kfg validate` stays fast.
    """
    usual = KNOWN_DISTRIBUTIONS.get(module, module)
    metadata = _metadata()
    try:
        return [str(metadata.distribution(usual).metadata["Name"])]
    except metadata.PackageNotFoundError:
        pass
    installed = _installed().get(module)
    if installed:
        return sorted(dict.fromkeys(installed))
    return [usual]


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s\[<>=!~;@(]", requirement.strip(), maxsplit=1)[0])


def provided(module: str, requirements: list[str] | tuple[str, ...]) -> bool:
    """Whether one of the pip `requirements` installs `module`."""
    names = {requirement_name(r) for r in requirements}
    if not names:
        return False
    usual = {canonical(module), canonical(KNOWN_DISTRIBUTIONS.get(module, module))}
    if names & usual:
        return True
    return bool(names & {canonical(d) for d in distributions(module)})


def installed_version(distribution: str) -> str | None:
    metadata = _metadata()
    try:
        return str(metadata.version(distribution))
    except metadata.PackageNotFoundError:
        return None


def named_modules(tree: ast.AST) -> set[str]:
    """Every module an import statement in `tree` names, with the packages above it (and,
    for `from a import b`, `a.b`, which may be a module): what the code imports itself, as
    opposed to what the libraries it calls import for themselves."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            full = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            full = [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
        else:
            continue
        for name in full:
            parts = name.split(".")
            names.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return names

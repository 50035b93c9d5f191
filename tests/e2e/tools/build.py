"""Build the e2e tier's Go tools once per machine, into a cache keyed by their sources.

Each tool is a Go module beside this file (go.mod and go.sum pin every version). Its
binaries go to `<cache>/<tool>-<key>/`, where the key hashes the module's files, the Go
version and the build flags, so a change of pinned version builds again and nothing else
does. The cache is $KFG_E2E_CACHE, else $XDG_CACHE_HOME/kfg-e2e, else ~/.cache/kfg-e2e.
A build writes to a temporary directory renamed into place, under a lock, so an interrupted
or concurrent build never leaves a half-filled cache entry.

Run `python tests/e2e/tools/build.py` (what `make e2e` does) to build what is missing;
`--print` lists where each binary is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
# -trimpath: the binaries do not depend on where the module cache is. -buildvcs=false: the
# tools are not versioned by kfg's git state.
GOFLAGS = "-trimpath -buildvcs=false -mod=readonly"


@dataclass(frozen=True)
class Tool:
    name: str
    # Package to build -> binary name. One `go build` per tool builds all of them.
    packages: dict[str, str]
    ldflags: str = ""


TOOLS = [
    Tool(
        "kube",
        {
            "k8s.io/kubernetes/cmd/kube-apiserver": "kube-apiserver",
            "go.etcd.io/etcd/server/v3": "etcd",
        },
        # What kubernetes/kubernetes hack/lib/version.sh stamps into a release build, so
        # /version reports the release (go.mod pins k8s.io/kubernetes v1.34.4).
        ldflags=" ".join(
            f"-X k8s.io/{package}.{name}={value}"
            for package in ("client-go/pkg/version", "component-base/version")
            for name, value in (
                ("gitVersion", "v1.34.4"),
                ("gitMajor", "1"),
                ("gitMinor", "34"),
                ("gitTreeState", "clean"),
            )
        ),
    ),
    Tool("katib-webhook", {".": "katib-webhook"}),
    Tool("flux-apply", {".": "flux-apply"}),
]


class BuildError(Exception):
    """A tool could not be built; the message says which and why."""


def cache_root() -> Path:
    explicit = os.environ.get("KFG_E2E_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kfg-e2e"


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the e2e tier needs Go (1.26 or later) on PATH to build kube-apiserver, etcd,"
            " Katib's webhooks and Flux's apply; see README.md"
        )
    return go


def _go_version(go: str) -> str:
    result = subprocess.run(
        [go, "env", "GOVERSION", "GOOS", "GOARCH"], capture_output=True, text=True, check=True
    )
    return " ".join(result.stdout.split())


def key(tool: Tool, go_version: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{go_version}\n{GOFLAGS}\n{tool.ldflags}\n".encode())
    digest.update(f"{sorted(tool.packages.items())}\n".encode())
    source = TOOLS_DIR / tool.name
    for path in sorted(source.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in {"go.mod", "go.sum"}):
            digest.update(path.relative_to(source).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _output(tool: Tool, go_version: str) -> Path:
    return cache_root() / f"{tool.name}-{key(tool, go_version)}"


def _build(go: str, tool: Tool, target: Path) -> None:
    source = TOOLS_DIR / tool.name
    staging = Path(f"{target}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {**os.environ, "GOFLAGS": GOFLAGS, "CGO_ENABLED": "0"}
    # Several main packages with -o DIR/: one invocation shares the compile of their
    # common dependencies. Binaries are named after the package, then renamed.
    command = ["nice", "-n", "10", go, "build", "-o", f"{staging}/"]
    if tool.ldflags:
        command.append(f"-ldflags={tool.ldflags}")
    command += list(tool.packages)
    if shutil.which("nice") is None:
        command = command[3:]
    started = time.monotonic()
    print(f"kfg e2e: building {tool.name} into {target} ...", file=sys.stderr, flush=True)
    result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(f"building {tool.name} failed:\n{result.stderr.strip()}")
    for package, binary in tool.packages.items():
        built = staging / _default_name(package, source)
        if built.name != binary:
            built.rename(staging / binary)
    os.rename(staging, target)
    print(
        f"kfg e2e: built {tool.name} in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _default_name(package: str, source: Path) -> str:
    """The file name `go build -o DIR/` gives a main package: its last path element, or the
    one before a major-version suffix (/v3), or the module's last element for "."."""
    if package == ".":
        module = (source / "go.mod").read_text().split("module ", 1)[1].split()[0]
        package = module
    parts = package.split("/")
    last = parts[-1]
    if len(parts) > 1 and last.startswith("v") and last[1:].isdigit():
        last = parts[-2]
    return last


def ensure(names: list[str] | None = None) -> dict[str, Path]:
    """Build whatever is missing; return every binary's path by name."""
    go = _go()
    go_version = _go_version(go)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    binaries: dict[str, Path] = {}
    for tool in TOOLS:
        if names is not None and tool.name not in names:
            continue
        target = _output(tool, go_version)
        if not target.is_dir():
            with open(root / f"{tool.name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not target.is_dir():
                    _build(go, tool, target)
        for binary in tool.packages.values():
            path = target / binary
            if not path.is_file():
                raise BuildError(f"{path} is missing; remove {target} and build again")
            binaries[binary] = path
    return binaries


def binary(name: str) -> Path:
    """One binary, building only the tool it belongs to if it is missing."""
    [tool] = [t for t in TOOLS if name in t.packages.values()]
    return ensure([tool.name])[name]


def main(argv: list[str]) -> int:
    try:
        binaries = ensure()
    except BuildError as exc:
        print(f"kfg e2e: {exc}", file=sys.stderr)
        return 1
    if "--print" in argv:
        for name, path in sorted(binaries.items()):
            print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

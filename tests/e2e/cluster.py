"""A real control plane on loopback for the e2e tier: etcd, kube-apiserver, and webhooks.

Everything listens on 127.0.0.1 only, on ports the kernel picks. Certificates are made
here (a CA, the API server's serving certificate, an admin client certificate in
system:masters, webhook serving certificates, the service-account signing key). Each
process runs in its own process group and is stopped by its pid (SIGTERM to the group,
then SIGKILL), and dies with the test process if that is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
# What a real cluster's service-account tokens name as issuer and audience.
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


# libyaml when PyYAML has it: the Argo CD CRDs alone take seconds with the pure-Python loader.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(text: str) -> list[Any]:
    """The YAML documents of a stream, empty ones left out."""
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


class ClusterError(Exception):
    """The control plane or a webhook did not start or answer; carries its log tail."""


# --- certificates -------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Authority:
    """A throwaway CA for one test session."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> Authority:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kfg-e2e-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        directory: Path,
        stem: str,
        common_name: str,
        *,
        server: bool,
        groups: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """Write STEM.crt and STEM.key: a serving certificate for 127.0.0.1 and localhost,
        or a client certificate whose organisations are Kubernetes groups."""
        key = _key()
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.IPv4Address(LOOPBACK)),
                    ]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        crt, pem = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem.write_bytes(_pem_key(key))
        pem.chmod(0o600)
        return crt, pem


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - not Linux with glibc
    _LIBC = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Runs in the child before exec: SIGKILL it if the test process dies (PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)


@dataclass
class Process:
    """A started binary with its log file; `stop` ends it and its group by its pid."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> Process:
        handle = log.open("wb")
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, whose id is its pid
                preexec_fn=_die_with_parent,
            )
        finally:
            handle.close()
        return cls(name, popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(grace)


def wait_for(
    what: str, check: Callable[[], bool], process: Process | None, timeout: float = 120.0
) -> None:
    """Poll `check` until it holds; fail early, with the log, if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.alive():
            raise ClusterError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        with contextlib.suppress(OSError, ApiError):
            if check():
                return
        if time.monotonic() > deadline:
            tail = f":\n{process.tail()}" if process else ""
            raise ClusterError(f"timed out waiting for {what}{tail}")
        time.sleep(0.2)


# --- the API ------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.get('message', body)}")


@dataclass
class Api:
    """A minimal REST client: JSON in and out, TLS with a client certificate or a token."""

    server: str
    context: ssl.SSLContext
    token: str | None = None
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        raw = self._send(urllib.request.Request(url, data=data, method=method, headers=headers))
        return json.loads(raw) if raw else None

    def _send(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as response:
                raw: bytes = response.read()
                return raw
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw)
            except ValueError:
                detail = {"message": raw.decode(errors="replace")}
            raise ApiError(exc.code, detail) from None

    def ready(self) -> bool:
        return self._send(urllib.request.Request(self.server + "/readyz")) == b"ok"

    def get(self, path: str, **query: str) -> Any:
        return self.request("GET", path, query=query or None)

    # Paths of objects, from discovery (cached; `forget` after installing CRDs).
    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(collection path prefix, namespaced) for a kind."""
        key = (api_version, kind)
        if key not in self._resources:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            for item in self.get(base)["resources"]:
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (
                        f"{base}/{item['name']}",
                        item["namespaced"],
                    )
        return self._resources[key]

    def forget(self) -> None:
        self._resources.clear()

    def path(self, obj: dict[str, Any], namespace: str | None = None, name: bool = True) -> str:
        collection, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        if namespaced:
            ns = namespace or obj["metadata"].get("namespace") or "default"
            head, tail = collection.rsplit("/", 1)
            collection = f"{head}/namespaces/{ns}/{tail}"
        return f"{collection}/{obj['metadata']['name']}" if name else collection

    def apply(
        self,
        obj: dict[str, Any],
        *,
        manager: str = "kfg-e2e",
        namespace: str | None = None,
        dry_run: bool = False,
        force: bool = True,
    ) -> Any:
        """Server-side apply, as `kubectl apply --server-side` sends it."""
        query = {"fieldManager": manager, "fieldValidation": "Strict"}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        return self.request(
            "PATCH",
            self.path(obj, namespace),
            obj,
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def create(
        self, obj: dict[str, Any], *, namespace: str | None = None, dry_run: bool = False
    ) -> Any:
        query = {"fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("POST", self.path(obj, namespace, name=False), obj, query=query)

    def read(self, obj: dict[str, Any], namespace: str | None = None) -> Any:
        return self.get(self.path(obj, namespace))

    def delete(self, obj: dict[str, Any], namespace: str | None = None) -> None:
        with contextlib.suppress(ApiError):
            self.request("DELETE", self.path(obj, namespace))

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        self.apply(body)
        # No controller-manager runs, so nothing creates the `default` ServiceAccount.
        self.apply(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            namespace=name,
        )


def ssl_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


# --- the control plane --------------------------------------------------------------------


@dataclass
class ControlPlane:
    """etcd and kube-apiserver on loopback, with an admin client and a kubeconfig."""

    directory: Path
    ca: Authority
    api: Api
    kubeconfig: Path
    processes: list[Process]

    @classmethod
    def start(cls, directory: Path, etcd: Path, apiserver: Path) -> ControlPlane:
        directory.mkdir(parents=True, exist_ok=True)
        ca = Authority.create()
        (directory / "ca.crt").write_bytes(ca.pem)
        serving = ca.issue(directory, "apiserver", "kube-apiserver", server=True)
        admin = ca.issue(
            directory, "admin", "kfg-e2e-admin", server=False, groups=("system:masters",)
        )
        sa_key = _key()
        (directory / "sa.key").write_bytes(_pem_key(sa_key))
        (directory / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        server = f"https://{LOOPBACK}:{free_port()}"
        api = Api(server, ssl_context(directory / "ca.crt", *admin))
        plane = cls(directory, ca, api, directory / "kubeconfig", [])
        try:
            plane._start(etcd, apiserver, serving, admin)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _start(
        self, etcd: Path, apiserver: Path, serving: tuple[Path, Path], admin: tuple[Path, Path]
    ) -> None:
        d = self.directory
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://{LOOPBACK}:{client_port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        etcd_process = Process.start(
            "etcd",
            [
                str(etcd),
                "--name=e2e",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                # Test data: no fsync, a small backend, quiet logs.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=1073741824",
                "--log-level=warn",
            ],
            d / "etcd.log",
        )
        self.processes.append(etcd_process)
        wait_for(
            "etcd",
            lambda: urllib.request.urlopen(f"{etcd_url}/health", timeout=2).status == 200,
            etcd_process,
        )
        server = self.api.server
        port = urllib.parse.urlsplit(server).port
        apiserver_process = Process.start(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--cert-dir={d / 'apiserver-certs'}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--api-audiences={SA_ISSUER}",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                # The defaults plus PodSecurity named explicitly: the tier depends on it.
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "PodSecurity,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,"
                "ValidatingAdmissionWebhook",
                "--allow-privileged=false",
                "--profiling=false",
                "--v=1",
            ],
            d / "kube-apiserver.log",
        )
        self.processes.append(apiserver_process)
        wait_for(
            "kube-apiserver /readyz",
            self.api.ready,
            apiserver_process,
            timeout=180,
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {
                                "server": server,
                                "certificate-authority": str(d / "ca.crt"),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "admin",
                            "user": {
                                "client-certificate": str(admin[0]),
                                "client-key": str(admin[1]),
                            },
                        }
                    ],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                    "current-context": "e2e",
                }
            )
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # --- helpers for tests and fixtures ---

    def install_crds(self, paths: list[Path]) -> list[str]:
        """Create each CustomResourceDefinition and wait until it is Established."""
        crds = [
            doc
            for path in paths
            for doc in load_all(path.read_text(encoding="utf-8"))
            if doc.get("kind") == "CustomResourceDefinition"
        ]
        for crd in crds:
            self.api.apply(crd)

        def established() -> bool:
            # The API server serves a CRD's resource in discovery once it is Established:
            # far cheaper to poll than CRDs of a megabyte (Argo CD's ApplicationSet).
            for crd in crds:
                group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
                for version in crd["spec"]["versions"]:
                    if version.get("served", True):
                        listed = self.api.get(f"/apis/{group}/{version['name']}")["resources"]
                        if plural not in {r["name"] for r in listed}:
                            return False
            return True

        wait_for("CRDs Established", established, None, timeout=60)
        self.api.forget()
        return [crd["metadata"]["name"] for crd in crds]

    def token(self, namespace: str, account: str, audience: str = SA_ISSUER) -> str:
        """A token for a ServiceAccount (TokenRequest), as a projected volume would hold."""
        answer = self.api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [audience], "expirationSeconds": 600},
            },
        )
        token: str = answer["status"]["token"]
        return token

    def as_token(self, token: str) -> Api:
        return Api(self.api.server, ssl_context(self.directory / "ca.crt"), token=token)

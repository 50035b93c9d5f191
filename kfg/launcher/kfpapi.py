"""The Kubeflow Pipelines REST API as the launcher uses it: authenticated, time-limited, JSON.

Calls go through the generated client of the server's own release (`kfp-server-api`, the
same version as `kfg.upstream.KFP`), so every path and parameter is one the server serves,
but not through `kfp.Client`: that class reads no ServiceAccount token when it is given a
host (`sdk/python/kfp/client/client.py` at 2.17.0 returns the configuration unauthenticated
once `host` is set), prints links on stdout, sets no timeouts and costs a second to import.
Responses are read as plain JSON (snake_case, as the v2beta1 gateway writes them), which
keeps the launcher independent of the client's model classes.

Authentication is the projected ServiceAccount token of audience `pipelines.kubeflow.org`
that KFP's TokenReview authenticator accepts (`backend/src/apiserver/auth/auth.go`): the
file named by `KF_PIPELINES_SA_TOKEN_PATH`, else KFP's default path, read again before
every request because the kubelet rotates it. Without such a file requests go
unauthenticated, which a single-user KFP accepts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
DEFAULT_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"  # kfp.client's default
# (connect, read) seconds for every request: a KFP API that stopped answering fails the
# call instead of hanging the trial until Katib's own deadline.
TIMEOUT = (10.0, 60.0)
# How the grpc-gateway of a server without a route answers (404), and what else means
# "not here" for an optional endpoint.
ABSENT = {404, 405, 501}
# What a proxy or a restarting API server answers for a moment: worth another try.
TRANSIENT = {502, 503, 504}


class KfpError(Exception):
    """A request failed; `status` is the HTTP status (0 when no answer came).

    `sent` is False only when the connection was never made or the answer was 503, so the
    server cannot have acted on the request: the one case where a request that creates
    something may be sent again without risking a duplicate.
    """

    def __init__(self, message: str, status: int = 0, sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent

    @property
    def transient(self) -> bool:
        """No answer at all (refused, reset, timed out) or a gateway's 502/503/504."""
        return self.status == 0 or self.status in TRANSIENT


class DeadlineError(KfpError):
    """The overall deadline passed before (or while) the request could be answered."""


def token_path() -> str | None:
    """The token file to authenticate with, if this pod (or machine) has one."""
    for candidate in (os.environ.get(TOKEN_ENV), DEFAULT_TOKEN_PATH):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _detail(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip().splitlines()[0][:300] if body.strip() else ""
    message = parsed.get("message") if isinstance(parsed, dict) else None
    return str(message) if message else ""


@dataclass
class Kfp:
    """One KFP API server; each method is one REST operation of the generated client.

    `deadline` (a `time.monotonic()` instant) caps every request's connect and read
    timeouts, so no single call can outlive the launcher's `--timeout`.
    """

    endpoint: str
    api_client: Any
    token: str | None
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds for the next request, within the deadline."""
        left = self.remaining()
        if left is None:
            return TIMEOUT
        if left <= 0:
            raise DeadlineError(
                f"the deadline passed before the KFP API at {self.endpoint} answered"
            )
        return (min(TIMEOUT[0], left), min(TIMEOUT[1], left))

    @classmethod
    def connect(cls, endpoint: str, token: str | None = None) -> Kfp:
        import kfp_server_api

        config = kfp_server_api.Configuration(host=endpoint.rstrip("/"))
        # No retries inside urllib3 (its default tries a failed connection 3 more times,
        # multiplying every timeout): the launcher retries, within its deadline.
        config.retries = False
        path = token if token is not None else token_path()
        if path:
            # The generated client consults the hook only for a key it already has.
            config.api_key["authorization"] = ""
            config.api_key_prefix["authorization"] = "Bearer"
            config.refresh_api_key_hook = _token_hook(path)
        return cls(endpoint, kfp_server_api.ApiClient(config), path)

    def _api(self, name: str) -> Any:
        import kfp_server_api

        return getattr(kfp_server_api, name)(self.api_client)

    def call(self, service: str, operation: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """`service.operation(*args, **kwargs)` with the timeout, as parsed JSON."""
        method = getattr(self._api(service), operation)
        return self._json(
            lambda: method(*args, _preload_content=False, **_limits(kwargs, self.timeout()))
        )

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        """A GET on a path the generated client has no operation for (an optional endpoint)."""
        return self._json(
            lambda: self.api_client.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["Bearer"],
                _preload_content=False,
                _request_timeout=self.timeout(),
            )
        )

    def _json(self, send: Callable[[], Any]) -> dict[str, Any]:
        from kfp_server_api.exceptions import ApiException
        from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError

        try:
            response = send()
        except KfpError:
            raise
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 0:
                raise KfpError(
                    f"cannot reach the KFP API at {self.endpoint} ({exc.reason})"
                ) from None
            detail = _detail(exc.body)
            message = f"the KFP API answered HTTP {status}"
            # 503: the server (or the proxy before it) did not take the request; a 502 or
            # 504 may come after the API server acted on it.
            raise KfpError(
                f"{message}: {detail}" if detail else message, status, sent=status != 503
            ) from None
        except HTTPError as exc:
            cause = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
            sent = not isinstance(cause, NewConnectionError)
            left = self.remaining()
            if left is not None and left <= 0:
                raise DeadlineError(
                    f"the deadline passed while waiting for the KFP API at {self.endpoint}"
                ) from None
            raise KfpError(
                f"cannot reach the KFP API at {self.endpoint} ({_reason(cause)})", sent=sent
            ) from None
        except OSError as exc:
            raise KfpError(f"cannot read the KFP token: {exc}", status=-1) from None
        try:
            data = response.data
        except HTTPError as exc:
            raise KfpError(
                f"the KFP API at {self.endpoint} broke off its answer ({_reason(exc)})"
            ) from None
        if not data:
            return {}
        try:
            parsed = json.loads(data)
        except ValueError:
            raise KfpError(f"the KFP API at {self.endpoint} answered something not JSON") from None
        return parsed if isinstance(parsed, dict) else {}


def _limits(kwargs: dict[str, Any], timeout: tuple[float, float]) -> dict[str, Any]:
    return {**{k: v for k, v in kwargs.items() if v is not None}, "_request_timeout": timeout}


def _reason(exc: BaseException) -> str:
    """One line: urllib3 nests the socket's own message inside its own."""
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def _token_hook(path: str) -> Callable[[Any], None]:
    def refresh(config: Any) -> None:
        config.api_key["authorization"] = Path(path).read_text(encoding="utf-8").strip()

    return refresh

"""The Kubernetes API, thin: GET and PATCH of one workload's scale subresource
(/apis/apps/v1/namespaces/{ns}/{kind}/{name}/scale), all that the controller's RBAC allows.
The service account's token is re-read when its file changes (projected tokens rotate)."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

MERGE_PATCH = "application/merge-patch+json"


class KubernetesError(Exception):
    """A request the API refused or never answered. `status` is the HTTP status (None: no
    answer), `reason` the Status' reason (Forbidden, Invalid, ...), str() the API's message."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.status} {self.reason or 'error'}: {self.message}"


@dataclass(frozen=True)
class Scale:
    """A scale subresource: the replicas asked for and those the workload has. An absent
    field is 0 (the API omits zero)."""

    spec_replicas: int
    status_replicas: int
    resource_version: str = ""


def scale_path(namespace: str, kind: str, name: str) -> str:
    return (
        f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/{kind}/{quote(name, safe='')}/scale"
    )


def _replicas(part: Any, where: str) -> int:
    value = part.get("replicas", 0) if isinstance(part, dict) else 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise KubernetesError(f"the Scale's {where}.replicas is not an integer: {value!r}")
    return value


def parse_scale(status: int, body: Any) -> Scale:
    """A Scale from an answer (status code, decoded JSON), or the API's Status as an error."""
    if not 200 <= status < 300:
        raise status_error(status, body)
    if not isinstance(body, dict) or body.get("kind") != "Scale":
        raise KubernetesError(f"HTTP {status}: the answer is not a Scale", status)
    metadata = body.get("metadata")
    version = metadata.get("resourceVersion", "") if isinstance(metadata, dict) else ""
    return Scale(
        _replicas(body.get("spec"), "spec"), _replicas(body.get("status"), "status"), str(version)
    )


def status_error(status: int, body: Any) -> KubernetesError:
    """The error an unsuccessful answer stands for: the Status' message and reason."""
    if isinstance(body, dict) and body.get("kind") == "Status":
        message = str(body.get("message") or "no message")
        return KubernetesError(message, status, str(body.get("reason") or ""))
    return KubernetesError("the answer is no Status", status)


class TokenFile:
    """The bearer token, read again whenever the file's size or modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def read(self) -> str:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._token = self.path.read_text().strip()
                self._stamp = stamp
        except OSError as exc:
            self._stamp = None
            raise KubernetesError(
                f"cannot read the service account token {self.path}: {exc.strerror or exc}"
            ) from None
        if not self._token:
            raise KubernetesError(f"the service account token {self.path} is empty")
        return self._token


class ScaleClient:
    """GET and PATCH of one target's scale. `transport` replaces the network (tests); `ca`
    verifies an https API (None: the system's trust store, or plain http)."""

    def __init__(
        self,
        api: str,
        namespace: str,
        kind: str,
        name: str,
        token: TokenFile,
        *,
        ca: Path | None = None,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api = api.rstrip("/")
        self.path = scale_path(namespace, kind, name)
        self.token = token
        verify: ssl.SSLContext | bool = True
        if ca is not None and transport is None:
            verify = ssl.create_default_context(cafile=str(ca))
        # trust_env off: a proxy variable must not see the token
        self._client = httpx.AsyncClient(
            base_url=self.api,
            timeout=timeout_s,
            verify=verify,
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self) -> Scale:
        return await self._request("GET")

    async def patch(self, replicas: int) -> Scale:
        body = json.dumps({"spec": {"replicas": replicas}}, separators=(",", ":"))
        return await self._request("PATCH", body.encode())

    async def _request(self, method: str, body: bytes | None = None) -> Scale:
        headers = {"Authorization": f"Bearer {self.token.read()}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = MERGE_PATCH
        try:
            response = await self._client.request(method, self.path, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise KubernetesError(f"{method} {self.api}{self.path}: unreachable: {exc!r}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        return parse_scale(response.status_code, answer)

"""forkd's Python client: the /v1 API over its Unix socket (or TCP with a bearer token), on httpx.

    from forkengine_client import Forkd, NotFound

    with Forkd() as forkd:                       # /run/forkengine/forkd.sock
        forkd.create_instance("template", "cloud-hypervisor", import_dir="/srv/guest")
        reply = forkd.fork("template", "web", count=3, target_state="Standby")
        for fork in reply["forks"]:
            print(fork["instance"]["name"], fork["phases"]["total_us"])

Replies are the JSON objects engine/forkd/openapi.json describes (dicts). An error reply raises the
ForkdError subclass of its code (NotFound, AlreadyExists, Busy, ...), carrying status, code and
message; ERRORS maps every code of the document's Error schema to its class.
"""
from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

import httpx

__all__ = [
    "DEFAULT_SOCKET", "ERRORS", "Forkd", "ForkdError", "InvalidArgument", "NotFound", "AlreadyExists",
    "PermissionDenied", "Unsupported", "InvalidContent", "NoSpace", "Busy", "FailedPrecondition",
    "Unavailable", "InsufficientResources", "TimedOut", "ServerError", "RequestRefused",
]

DEFAULT_SOCKET = "/run/forkengine/forkd.sock"


class ForkdError(Exception):
    """An error reply of forkd: its HTTP status and the document's {code, message}."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidArgument(ForkdError): """400: a malformed body, an unknown field, a bad value."""
class NotFound(ForkdError): """404: no such instance, pool or route."""
class AlreadyExists(ForkdError): """409: the name is taken."""
class PermissionDenied(ForkdError): """403."""
class Unsupported(ForkdError): """422: the hypervisor or this host cannot do it."""
class InvalidContent(ForkdError): """422: a guest directory or a file in it is not acceptable."""
class NoSpace(ForkdError): """507: the storage is full; nothing was made."""
class Busy(ForkdError): """409: the instance is locked by another operation (retry)."""
class FailedPrecondition(ForkdError): """409: the instance is in the wrong state."""
class Unavailable(ForkdError): """503: e.g. an empty pool asked not to wait."""
class InsufficientResources(ForkdError): """409: no free address, or the CPU or memory budget is spent."""
class TimedOut(ForkdError): """504."""
class ServerError(ForkdError): """500: io or internal."""
class RequestRefused(ForkdError): """The transport refused the request itself (413, 411, 431, 405, 401)."""


ERRORS: dict[str, type[ForkdError]] = {
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "permission_denied": PermissionDenied,
    "unsupported": Unsupported,
    "invalid_content": InvalidContent,
    "no_space": NoSpace,
    "busy": Busy,
    "failed_precondition": FailedPrecondition,
    "unavailable": Unavailable,
    "insufficient_resources": InsufficientResources,
    "timed_out": TimedOut,
    "io": ServerError,
    "internal": ServerError,
    "payload_too_large": RequestRefused,
    "method_not_allowed": RequestRefused,
    "length_required": RequestRefused,
    "header_too_large": RequestRefused,
    "unauthenticated": RequestRefused,
}


def _segment(value: str) -> str:
    """An id or name as one path segment, whatever it holds."""
    return quote(value, safe="")


def _dropping_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class Forkd:
    """A connection to forkd. `socket` (default /run/forkengine/forkd.sock), or `url` with `token`
    for its TCP listener. Forks can take seconds (a count of 64, a Running target): `timeout` is
    generous by default."""

    def __init__(self, socket: str = DEFAULT_SOCKET, *, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 300.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = None if url else httpx.HTTPTransport(uds=socket)
        self._http = httpx.Client(base_url=url or "http://forkd", transport=transport, headers=headers,
                                  timeout=timeout)

    def __enter__(self) -> "Forkd":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Optional[dict[str, Any]] = None,
              idempotency_key: Optional[str] = None, params: Optional[list[tuple[str, str]]] = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        reply = self._http.request(method, path, json=body, headers=headers, params=params)
        if reply.is_success:
            return reply.json() if reply.content else None
        try:
            error = reply.json()
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            code, message = "internal", reply.text
        raise ERRORS.get(code, ForkdError)(reply.status_code, code, message)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/v1/healthz")

    def list_instances(self, *, labels: Optional[dict[str, str]] = None, state: Optional[str] = None,
                       parent: Optional[str] = None, ancestor: Optional[str] = None,
                       page_size: Optional[int] = None) -> list[dict[str, Any]]:
        """Every instance matching the filters (labels: all must match), oldest first, fetched a page of
        `page_size` at a time when given."""
        instances: list[dict[str, Any]] = []
        token: Optional[str] = None
        while True:
            page = self.list_instances_page(labels=labels, state=state, parent=parent, ancestor=ancestor,
                                            limit=page_size, page_token=token)
            instances += page["instances"]
            token = page.get("next_page_token")
            if token is None:
                return instances

    def list_instances_page(self, *, labels: Optional[dict[str, str]] = None, state: Optional[str] = None,
                            parent: Optional[str] = None, ancestor: Optional[str] = None,
                            limit: Optional[int] = None, page_token: Optional[str] = None) -> dict[str, Any]:
        """One page: {"instances": [...], "next_page_token": ...} (the token only when more follow)."""
        params = [("label", f"{key}={value}") for key, value in (labels or {}).items()]
        for name, value in (("state", state), ("parent", parent), ("ancestor", ancestor), ("limit", limit),
                            ("page_token", page_token)):
            if value is not None:
                params.append((name, str(value)))
        return self._call("GET", "/v1/instances", params=params)

    def get_instance(self, instance: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/instances/{_segment(instance)}")

    def create_instance(self, name: str, hypervisor: str, *, import_dir: Optional[str] = None,
                        state: Optional[str] = None, vcpus: Optional[int] = None,
                        labels: Optional[dict[str, str]] = None, ttl_s: Optional[int] = None,
                        idle_standby_s: Optional[int] = None,
                        idempotency_key: Optional[str] = None) -> dict[str, Any]:
        """An empty instance, or one importing the guest directory `import_dir`; forkd deletes it `ttl_s`
        after and stands it by once idle `idle_standby_s`, when given."""
        body = _dropping_none(name=name, hypervisor=hypervisor, import_dir=import_dir, state=state, vcpus=vcpus,
                              labels=labels, ttl_s=ttl_s, idle_standby_s=idle_standby_s)
        return self._call("POST", "/v1/instances", body, idempotency_key)

    def delete_instance(self, instance: str) -> None:
        self._call("DELETE", f"/v1/instances/{_segment(instance)}")

    def fork(self, source: str, name: str, *, count: Optional[int] = None, target_state: Optional[str] = None,
             from_running: Optional[bool] = None, memory: Optional[str] = None,
             labels: Optional[dict[str, str]] = None, ttl_s: Optional[int] = None,
             idle_standby_s: Optional[int] = None, idempotency_key: Optional[str] = None) -> dict[str, Any]:
        """`count` forks of `source` (all or nothing; named name-1..name-N when count > 1), with the
        source's labels and `labels` laid over them."""
        body = _dropping_none(name=name, count=count, target_state=target_state, from_running=from_running,
                              memory=memory, labels=labels, ttl_s=ttl_s, idle_standby_s=idle_standby_s)
        return self._call("POST", f"/v1/instances/{_segment(source)}/fork", body, idempotency_key)

    def update_instance(self, instance: str, **changes: Any) -> dict[str, Any]:
        """PATCH: ttl_s (seconds from now; None: never), idle_standby_s (0: never), labels ({key: value or
        None to remove})."""
        return self._call("PATCH", f"/v1/instances/{_segment(instance)}", changes)

    def list_pools(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/pools")["pools"]

    def create_pool(self, name: str, template: str, *, member_state: Optional[str] = None,
                    min_size: Optional[int] = None, max_size: Optional[int] = None,
                    memory: Optional[str] = None) -> dict[str, Any]:
        body = _dropping_none(name=name, template=template, member_state=member_state, min_size=min_size,
                              max_size=max_size, memory=memory)
        return self._call("POST", "/v1/pools", body)

    def get_pool(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/pools/{_segment(name)}")

    def delete_pool(self, name: str) -> None:
        self._call("DELETE", f"/v1/pools/{_segment(name)}")

    def acquire(self, pool: str, *, name: Optional[str] = None, no_wait: Optional[bool] = None,
                ttl_s: Optional[int] = None, idle_standby_s: Optional[int] = None,
                idempotency_key: Optional[str] = None) -> dict[str, Any]:
        """A ready member of `pool` (or one forked on demand), renamed `name`, with its lifecycle policy."""
        return self._call("POST", f"/v1/pools/{_segment(pool)}/acquire",
                          _dropping_none(name=name, no_wait=no_wait, ttl_s=ttl_s, idle_standby_s=idle_standby_s),
                          idempotency_key)

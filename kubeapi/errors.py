"""Kubernetes ``Status`` errors: one exception type that renders as the body kube-apiserver sends.

Messages follow kube-apiserver's wording (``k8s.io/apimachinery/pkg/api/errors``) because clients
and users match on them (kubectl prints them verbatim; client libraries look at ``reason``).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StatusCause(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    reason: str = ""
    message: str = ""
    field: str = ""


class StatusDetails(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: list[StatusCause] = Field(default_factory=list)
    retry_after_seconds: int = Field(0, alias="retryAfterSeconds")


class Status(BaseModel):
    """``meta.k8s.io/v1`` Status, as sent for every error and for some successful deletes."""

    model_config = ConfigDict(populate_by_name=True)

    kind: str = "Status"
    api_version: str = Field("v1", alias="apiVersion")
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: str = "Failure"
    message: str = ""
    reason: str = ""
    details: StatusDetails | None = None
    code: int = 500

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True, exclude_defaults=False, exclude_none=True)).encode()


class APIError(Exception):
    """An error answered as a Status body with HTTP ``code``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str = "",
        group: str = "",
        kind: str = "",
        causes: list[StatusCause] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: StatusDetails | None = None
        if name or group or kind or causes:
            self.details = StatusDetails(name=name, group=group, kind=kind, causes=causes or [])

    def status(self) -> Status:
        return Status(code=self.code, reason=self.reason, message=self.message, details=self.details)


def qualified(resource: str, group: str) -> str:
    """``devices.devices.kubeedge.io`` or ``pods``: how kube-apiserver names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        name=name,
        group=group,
        kind=resource,
    )


def already_exists(resource: str, group: str, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        name=name,
        group=group,
        kind=resource,
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> APIError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        name=name,
        group=group,
        kind=resource,
    )


def gone(requested: int, oldest: int) -> APIError:
    return APIError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[StatusCause]) -> APIError:
    """422 Invalid: ``Kind.group "name" is invalid: [field: reason, ...]`` as kube-apiserver words it."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return APIError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name}" is invalid: {summary}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def field_error(field: str, reason: str, message: str) -> StatusCause:
    """A cause like kube-apiserver's ``field.Error``: reason is e.g. ``FieldValueRequired``."""
    return StatusCause(field=field, reason=reason, message=message)


def method_not_allowed() -> APIError:
    return APIError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def unknown_resource() -> APIError:
    return APIError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        causes=[StatusCause(reason="UnexpectedServerResponse", message="404 page not found")],
    )


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(
    user: str, verb: str, resource: str, group: str, namespace: str | None, name: str | None
) -> APIError:
    what = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return APIError(
        403,
        "Forbidden",
        f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}"{where}',
        name=name or "",
        group=group,
        kind=resource,
    )


def too_large(limit: int) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
    )

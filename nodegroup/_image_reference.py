"""Container image references split into registry, repository and tag/digest.

Follows the grammar of the distribution project's ``reference`` package (what Docker, containerd
and KubeEdge's image overrider use): ``[registry/]repository[:tag][@digest]``, where the first
path component is a registry only if it contains ``.`` or ``:`` or is ``localhost``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
TAG_RE = re.compile(rf"^{_TAG}$")
DIGEST_RE = re.compile(rf"^{_DIGEST}$")

_MAX_NAME = 255


class ImageReferenceError(ValueError):
    """The text is not a valid image reference; the message says which part is wrong."""


@dataclass
class ImageReference:
    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    def tag_or_digest(self) -> str:
        return self.tag or self.digest

    def set_tag_or_digest(self, value: str) -> None:
        if TAG_RE.match(value):
            self.tag, self.digest = value, ""
        elif DIGEST_RE.match(value):
            self.tag, self.digest = "", value
        else:
            raise ImageReferenceError(f"{value!r} is neither a valid tag nor a valid digest")

    def remove_tag_or_digest(self) -> None:
        # Tag and digest are kept mutually exclusive, as in KubeEdge: the tag goes first.
        if self.tag:
            self.tag = ""
        else:
            self.digest = ""

    def full_repository(self) -> str:
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        if self.tag:
            return f"{self.full_repository()}:{self.tag}"
        if self.digest:
            return f"{self.full_repository()}@{self.digest}"
        return self.full_repository()


def split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or not (("." in first or ":" in first) or first == "localhost"):
        return "", name
    return first, rest


def parse_image(image: str) -> ImageReference:
    if not image:
        raise ImageReferenceError("image reference is empty")
    digest = ""
    rest = image
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not DIGEST_RE.match(digest):
            raise ImageReferenceError(f"image {image!r}: {digest!r} is not a valid digest")
    tag = ""
    # A colon after the last slash separates the tag; one before it belongs to a registry port.
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not TAG_RE.match(tag):
            raise ImageReferenceError(f"image {image!r}: {tag!r} is not a valid tag")
    if len(rest) > _MAX_NAME:
        raise ImageReferenceError(f"image {image!r}: name longer than {_MAX_NAME} characters")
    registry, repository = split_registry(rest)
    if registry and not _DOMAIN_RE.match(registry):
        raise ImageReferenceError(f"image {image!r}: {registry!r} is not a valid registry")
    if not _REPOSITORY_RE.match(repository):
        raise ImageReferenceError(
            f"image {image!r}: repository {repository!r} must be lowercase path components "
            "of letters, digits and separators"
        )
    # When both are given, the distribution parser reports the reference as tagged.
    if tag:
        digest = ""
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)

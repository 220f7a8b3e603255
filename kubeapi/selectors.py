"""Label selectors (equality- and set-based) and field selectors, parsed as kube-apiserver parses them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeapi.errors import bad_request

_LABEL_RE = re.compile(
    r"""\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*
        (?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9_.-]*))?\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label, as in Kubernetes.
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls()
        reqs = []
        for part in _split_top_level(text):
            if not part.strip():
                raise bad_request(f"unable to parse requirement: found '', expected: identifier in {text!r}")
            m = _LABEL_RE.match(part)
            if m is None:
                raise bad_request(f"unable to parse requirement: invalid label selector {part.strip()!r}")
            key, op, value = m["key"], (m["op"] or "").strip(), m["value"]
            if m["neg"]:
                if op:
                    raise bad_request(f"unable to parse requirement: invalid label selector {part.strip()!r}")
                reqs.append(Requirement(key, "!"))
            elif not op:
                reqs.append(Requirement(key, "exists"))
            elif op in ("in", "notin"):
                if not value or not value.startswith("("):
                    raise bad_request(f"unable to parse requirement: expected '(' in {part.strip()!r}")
                values = tuple(v.strip() for v in value[1:-1].split(",") if v.strip())
                reqs.append(Requirement(key, op, values))
            else:
                if value is None or value.startswith("("):
                    raise bad_request(f"unable to parse requirement: invalid value in {part.strip()!r}")
                reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        return cls(tuple(reqs))

    @classmethod
    def from_match(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """A ``metav1.LabelSelector`` object (matchLabels/matchExpressions), as used in specs."""
        if not selector:
            return cls()
        labels: Mapping[str, Any] = selector.get("matchLabels") or {}
        reqs = [Requirement(str(k), "=", (str(v),)) for k, v in labels.items()]
        for expr in selector.get("matchExpressions") or []:
            op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(
                expr.get("operator")
            )
            if op:
                reqs.append(Requirement(expr.get("key", ""), op, tuple(expr.get("values") or ())))
        return cls(tuple(reqs))

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        out = []
        for r in self.requirements:
            if r.op == "exists":
                out.append(r.key)
            elif r.op == "!":
                out.append("!" + r.key)
            elif r.op in ("in", "notin"):
                out.append(f"{r.key} {r.op} ({','.join(r.values)})")
            else:
                out.append(f"{r.key}{r.op}{r.values[0]}")
        return ",".join(out)


@dataclass(frozen=True)
class FieldSelector:
    """Conjunction of ``field=value`` / ``field!=value`` terms."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal, value)

    @classmethod
    def parse(cls, text: str | None, allowed: tuple[str, ...] = ()) -> FieldSelector:
        if not text or not text.strip():
            return cls()
        terms = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "!=" in part:
                name, value = part.split("!=", 1)
                equal = False
            elif "==" in part:
                name, value = part.split("==", 1)
                equal = True
            elif "=" in part:
                name, value = part.split("=", 1)
                equal = True
            else:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            name = name.strip()
            if name not in ("metadata.name", "metadata.namespace", *allowed):
                raise bad_request(f"field label not supported: {name}")
            terms.append((name, equal, value.strip()))
        return cls(tuple(terms))

    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(name, "") == value) == equal for name, equal, value in self.terms)

    def required(self, name: str) -> str | None:
        """The value a term pins ``name`` to, letting stores use an index."""
        for field, equal, value in self.terms:
            if field == name and equal:
                return value
        return None


@dataclass(frozen=True)
class Selector:
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def empty(self) -> bool:
        return self.labels.empty() and self.fields.empty()

    def matches(self, labels: Mapping[str, str], fields: Mapping[str, str]) -> bool:
        return self.labels.matches(labels) and self.fields.matches(fields)


EVERYTHING = Selector()

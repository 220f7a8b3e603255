"""Regenerate the tables Kubernetes defines (built-in schemas, strategic-merge lists) from its OpenAPI.

Usage: ``python -m kubeapi.generate [--check] [--fetch]``.

The input is ``kubeapi/openapi-spec/kubernetes-v1.36.json``: the OpenAPI v3 definitions a real
kube-apiserver publishes (``GET /openapi/v3/api/v1``, ``/openapi/v3/apis/<group>/<version>``) for the
kinds kubeapi serves (:func:`kubeapi.builtins.builtin_types`, plus the ``autoscaling/v1`` Scale
subresource), trimmed to what those kinds reference. Two modules are generated from it:

- ``kubeapi/_generated_schemas.py``: the definitions by name, and the definition name of each served
  kind and list kind; :mod:`kubeapi.openapi` serves them (``kubectl explain``).
- ``kubeapi/_generated_merge_lists.py``: per kind, every list a strategic merge patch merges
  (``x-kubernetes-patch-strategy`` containing ``merge``) as a dotted path from the object root, ``[]``
  for "each element", with its ``x-kubernetes-patch-merge-key``; :mod:`kubeapi.patch` applies them.
  Lists under map values (only ``JSONSchemaProps.properties`` and the like) and under a definition
  that refers back to itself are not followed: a path cannot name them.

With ``--check`` nothing is written and the exit code is 1 when a generated module differs from what
the spec generates (the test suite runs this). ``--fetch`` first refreshes the spec: it starts the
kube-apiserver of ``../shared/kubernetes`` (``run-control-plane.sh``, on loopback, free ports, stopped
by PID afterwards), asks it for the group-version documents, trims them and writes the spec; needs the
shared peers, so CI never runs it. A kind added to :mod:`kubeapi.builtins` makes ``--check`` fail
until both are rerun.

:func:`proto_disagreements` compares the merge metadata with the ``+patchStrategy``/``+patchMergeKey``
tags of Kubernetes' ``generated.proto`` files (``../shared/kubernetes-proto``, an older release: fields
only one side has are version differences and skipped).
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC = REPO_ROOT / "kubeapi" / "openapi-spec" / "kubernetes-v1.36.json"
SCHEMAS_MODULE = REPO_ROOT / "kubeapi" / "_generated_schemas.py"
MERGE_LISTS_MODULE = REPO_ROOT / "kubeapi" / "_generated_merge_lists.py"
CONTROL_PLANE = REPO_ROOT.parent / "shared" / "kubernetes" / "run-control-plane.sh"
PROTO_ROOT = REPO_ROOT.parent / "shared" / "kubernetes-proto"

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# Definitions every group-version document holds whatever it serves (request and response bodies).
COMMON = tuple(META + name for name in ("Status", "DeleteOptions", "Patch", "WatchEvent"))
# kube-apiserver lists these once per group in x-kubernetes-group-version-kind.
_PER_GROUP = (META + "DeleteOptions", META + "WatchEvent")
_GVK = "x-kubernetes-group-version-kind"
_REF = re.compile(r'"\$ref": ?"#/components/schemas/([^"]+)"')

Kind = tuple[str, str, str]
Schema = dict[str, Any]

# Kinds served as a subresource only (no list kind): a Deployment's /scale.
SUBRESOURCE_KINDS: set[Kind] = {("autoscaling", "v1", "Scale")}


class GenerationError(Exception):
    """The spec does not hold what the generated tables need, or disagrees with itself."""


def served_kinds() -> list[Kind]:
    """(group, version, kind) of every built-in kind kubeapi serves, and of the Scale subresource."""
    from kubeapi.builtins import builtin_types

    return sorted({(t.group, t.version, t.kind) for t in builtin_types()} | SUBRESOURCE_KINDS)


def group_version_path(group: str, version: str) -> str:
    # As kubeapi.openapi's, which cannot be imported here: it needs the modules this writes.
    return f"apis/{group}/{version}" if group else f"api/{version}"


# --------------------------------------------------------------------------------------------------
# The spec: fetched from kube-apiserver, trimmed


def _gvks(schema: Mapping[str, Any]) -> list[Kind]:
    return [(g["group"], g["version"], g["kind"]) for g in schema.get(_GVK) or []]


def _merge_documents(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Schema]:
    """One table of every document's definitions; a definition may differ between documents only in
    its group-version-kinds (DeleteOptions lists the document's group), which are then united."""
    merged: dict[str, Schema] = {}
    for path, doc in sorted(documents.items()):
        for name, schema in doc["components"]["schemas"].items():
            known = merged.setdefault(name, schema)
            if known == schema:
                continue
            if {k: v for k, v in known.items() if k != _GVK} != {
                k: v for k, v in schema.items() if k != _GVK
            }:
                raise GenerationError(f"{name} differs between group-version documents (/openapi/v3/{path})")
            united = sorted({*_gvks(known), *_gvks(schema)})
            merged[name] = {**known, _GVK: [{"group": g, "kind": k, "version": v} for g, v, k in united]}
    return merged


def definitions_by_kind(schemas: Mapping[str, Schema], kinds: Iterable[Kind]) -> dict[Kind, str]:
    """The definition name of each kind and of its list kind (``PodList``), from the GVK extensions."""
    by_gvk: dict[Kind, str] = {}
    for name, schema in schemas.items():
        if name in _PER_GROUP:
            continue
        for gvk in _gvks(schema):
            by_gvk[gvk] = name
    out: dict[Kind, str] = {}
    for group, version, kind in kinds:
        wanted = [(group, version, kind)]
        if (group, version, kind) not in SUBRESOURCE_KINDS:
            wanted.append((group, version, kind + "List"))
        for gvk in wanted:
            if gvk not in by_gvk:
                raise GenerationError(
                    f"{'/'.join(gvk)} has no definition in the spec: run python -m kubeapi.generate --fetch"
                )
            out[gvk] = by_gvk[gvk]
    return out


def closure(roots: Iterable[str], schemas: Mapping[str, Schema]) -> list[str]:
    """Every definition reachable from ``roots`` through ``$ref``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise GenerationError(f"{name} is referenced but not defined")
        seen.add(name)
        todo.extend(_REF.findall(json.dumps(schemas[name])))
    return sorted(seen)


def trim(documents: Mapping[str, Mapping[str, Any]], version: str, kinds: Iterable[Kind]) -> dict[str, Any]:
    """The spec to commit: the definitions of ``kinds`` (and what they reference) from ``documents``."""
    kinds = sorted(kinds)
    merged = _merge_documents(documents)
    names = definitions_by_kind(merged, kinds)
    keep = closure([*names.values(), *COMMON], merged)
    return {
        "info": {
            "title": "Kubernetes' OpenAPI v3 definitions of the kinds kubeapi serves",
            "source": f"kube-apiserver {version} (../shared/kubernetes), GET /openapi/v3/<group-version>",
            "documents": sorted(f"/openapi/v3/{path}" for path in documents),
            "trimmed": "the served kinds, their lists and meta/v1 request bodies, closed over $ref",
            "command": "python -m kubeapi.generate --fetch",
            "version": version,
        },
        "components": {"schemas": {name: merged[name] for name in keep}},
    }


def read_documents(
    server: str, pki: Path, kinds: Iterable[Kind] | None = None
) -> tuple[str, dict[str, dict[str, Any]]]:
    """kube-apiserver's version and its OpenAPI v3 document of each group-version of ``kinds``, read
    from ``server`` with the admin certificate of ``run-control-plane.sh``'s ``pki`` directory."""
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def get(path: str) -> Any:
        with urllib.request.urlopen(server + path, context=context, timeout=60) as response:
            return json.load(response)

    paths = sorted({group_version_path(g, v) for g, v, _ in kinds or served_kinds()})
    return get("/version")["gitVersion"], {path: get(f"/openapi/v3/{path}") for path in paths}


def fetch(script: Path = CONTROL_PLANE) -> dict[str, Any]:
    """Start a throw-away control plane with ``script``, read its OpenAPI, stop it; the trimmed spec."""
    if not script.is_file():
        raise GenerationError(f"{script} not found: --fetch needs Kubernetes' control plane (../shared)")
    kinds = served_kinds()
    with tempfile.TemporaryDirectory(prefix="kubeapi-fetch-") as scratch:
        directory = Path(scratch)
        try:
            started = subprocess.run(
                [str(script), scratch], capture_output=True, text=True, timeout=300, check=False
            )
            if started.returncode != 0:
                raise GenerationError(f"{script} failed: {started.stderr.strip()[-2000:]}")
            env = (directory / "env").read_text().splitlines()
            server = next(line.split("=", 1)[1] for line in env if line.startswith("KUBE_APISERVER="))
            version, documents = read_documents(server, directory / "pki", kinds)
        finally:
            # By PID, from the directory's pid file: only what this run started.
            stop = directory / "stop.sh"
            if stop.exists():
                subprocess.run([str(stop)], capture_output=True, timeout=120, check=False)
    return trim(documents, version, kinds)


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    if not path.is_file():
        raise GenerationError(f"{path} not found: run python -m kubeapi.generate --fetch")
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def spec_text(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, indent=1, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------------------
# Strategic-merge lists


def _resolve(schema: Mapping[str, Any], schemas: Mapping[str, Schema]) -> tuple[Mapping[str, Any], str]:
    """A property's schema with its reference (``$ref`` or a one-element ``allOf``) followed; the
    name of the definition followed, or ``""``. The property's own extensions win over the target's."""
    target = schema.get("$ref")
    all_of = schema.get("allOf")
    if target is None and isinstance(all_of, list) and len(all_of) == 1:
        target = all_of[0].get("$ref")
    if not isinstance(target, str):
        return schema, ""
    name = target.rsplit("/", 1)[-1]
    if name not in schemas:
        raise GenerationError(f"{name} is referenced but not defined")
    return {**schemas[name], **{k: v for k, v in schema.items() if k not in ("$ref", "allOf")}}, name


def merge_lists(root: str, schemas: Mapping[str, Schema]) -> dict[str, tuple[str | None, bool]]:
    """Every list under definition ``root`` that strategic merge patch merges: path -> (merge key,
    ``retainKeys`` in the strategy)."""
    out: dict[str, tuple[str | None, bool]] = {}

    def walk(schema: Mapping[str, Any], path: str, stack: tuple[str, ...]) -> None:
        schema, name = _resolve(schema, schemas)
        if name:
            if name in stack:
                return
            stack = (*stack, name)
        strategy = str(schema.get("x-kubernetes-patch-strategy", "")).split(",")
        if schema.get("type") == "array":
            items, _ = _resolve(schema.get("items") or {}, schemas)
            if "merge" in strategy:
                key = schema.get("x-kubernetes-patch-merge-key")
                if key is None and items.get("type") in (None, "object"):
                    raise GenerationError(f"{root} {path}: a merged list of objects without a merge key")
                out[path] = (key, "retainKeys" in strategy)
            walk(schema.get("items") or {}, path + "[]", stack)
        for key, sub in (schema.get("properties") or {}).items():
            walk(sub, f"{path}.{key}" if path else key, stack)

    walk({"$ref": "#/components/schemas/" + root}, "", ())
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------------
# Rendering


def _header(spec: Mapping[str, Any]) -> str:
    source = SPEC.relative_to(REPO_ROOT).as_posix()
    return (
        f"# Generated by `python -m kubeapi.generate` from {source} "
        f"(kube-apiserver {spec['info']['version']}). DO NOT EDIT.\n"
    )


def render(spec: Mapping[str, Any]) -> dict[Path, str]:
    """The generated modules' texts by path."""
    schemas: Mapping[str, Schema] = spec["components"]["schemas"]
    kinds = served_kinds()
    names = definitions_by_kind(schemas, kinds)
    version = spec["info"]["version"]
    lines = [
        _header(spec),
        f'"""OpenAPI v3 definitions of the built-in kinds served, from kube-apiserver {version}."""\n',
        "\nfrom typing import Any\n\n",
        f"KUBERNETES_VERSION = {version!r}\n\n",
        "# (group, version, kind) of each served kind and list kind -> its definition name.\n",
        "DEFINITIONS: dict[tuple[str, str, str], str] = {\n",
        *(f"    {gvk!r}: {name!r},\n" for gvk, name in sorted(names.items())),
        "}\n\n",
        "SCHEMAS: dict[str, Any] = {\n",
        *(f"    {name!r}: {schemas[name]!r},\n" for name in sorted(schemas)),
        "}\n",
    ]
    merge = [
        _header(spec),
        '"""Lists strategic merge patch merges, per built-in kind: path -> (merge key, retainKeys)."""\n\n',
        "MERGE_LISTS: dict[tuple[str, str, str], dict[str, tuple[str | None, bool]]] = {\n",
    ]
    for kind in kinds:
        merge.append(f"    {kind!r}: {{\n")
        merge.extend(
            f"        {path!r}: {value!r},\n" for path, value in merge_lists(names[kind], schemas).items()
        )
        merge.append("    },\n")
    merge.append("}\n")
    return {SCHEMAS_MODULE: "".join(lines), MERGE_LISTS_MODULE: "".join(merge)}


def stale(spec_path: Path = SPEC, directory: Path | None = None) -> list[str]:
    """Names of generated modules missing or differing from what the spec generates."""
    found = []
    for path, text in render(load_spec(spec_path)).items():
        target = (directory / path.name) if directory else path
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            found.append(path.name)
    return sorted(found)


# --------------------------------------------------------------------------------------------------
# Cross-check with the protobuf definitions

_MESSAGE = re.compile(r"^message (\w+) \{")
_FIELD = re.compile(r"^\s*(?:repeated|optional|map<[^>]+>)\s+\S+\s+(\w+)\s*=")
_TAG = re.compile(r"^\s*//\s*\+(patchStrategy|patchMergeKey)=(\S+)")
_PACKAGE = re.compile(r"^package ([\w.]+);", re.MULTILINE)


def _proto_tags(proto_root: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(definition name, field, its patch tags) of every field of Kubernetes' generated.proto files."""
    for path in sorted(proto_root.rglob("generated.proto")):
        text = path.read_text(encoding="utf-8")
        package = _PACKAGE.search(text)
        if package is None:
            continue
        # k8s.io.api.core.v1 -> io.k8s.api.core.v1, the OpenAPI definitions' prefix.
        prefix = "io.k8s." + package.group(1).removeprefix("k8s.io.").replace("_", "-")
        message = ""
        tags: dict[str, str] = {}
        for line in text.splitlines():
            if found := _MESSAGE.match(line):
                message, tags = found.group(1), {}
            elif found := _TAG.match(line):
                tags[found.group(1)] = found.group(2)
            elif (found := _FIELD.match(line)) and message:
                yield f"{prefix}.{message}", found.group(1), tags
                tags = {}
            elif not line.strip().startswith("//"):
                tags = {}


def proto_disagreements(spec: Mapping[str, Any], proto_root: Path = PROTO_ROOT) -> list[str]:
    """Fields of the spec whose patch strategy or merge key differs from the proto's tags."""
    schemas: Mapping[str, Schema] = spec["components"]["schemas"]
    out = []
    compared = 0
    for name, field, tags in _proto_tags(proto_root):
        prop = (schemas.get(name) or {}).get("properties", {}).get(field)
        if prop is None:
            continue
        compared += 1
        ours = {
            "patchStrategy": prop.get("x-kubernetes-patch-strategy"),
            "patchMergeKey": prop.get("x-kubernetes-patch-merge-key"),
        }
        theirs = {key: tags.get(key) for key in ours}
        if ours != theirs:
            out.append(f"{name}.{field}: OpenAPI {ours}, proto {theirs}")
    if not compared:
        raise GenerationError(f"no field of the spec found in {proto_root}")
    return out


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeapi.generate", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if generated modules are stale")
    mode.add_argument(
        "--fetch", action="store_true", help="refresh the spec from a real kube-apiserver first"
    )
    parser.add_argument("--control-plane", type=Path, default=CONTROL_PLANE, help="run-control-plane.sh")
    opts = parser.parse_args(argv)
    try:
        if opts.check:
            names = stale()
            if names:
                print(f"stale generated modules in {SCHEMAS_MODULE.parent}: {', '.join(names)}")
                print("run python -m kubeapi.generate")
                return 1
            print("kubeapi's Kubernetes tables are up to date")
            return 0
        if opts.fetch:
            spec = fetch(opts.control_plane)
            SPEC.parent.mkdir(parents=True, exist_ok=True)
            SPEC.write_text(spec_text(spec), encoding="utf-8")
            print(f"wrote {SPEC} ({len(spec['components']['schemas'])} definitions)")
        for path, text in render(load_spec()).items():
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

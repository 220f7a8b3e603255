"""Regenerate kubeapi's generated modules: the tables Kubernetes defines, and gnostic's OpenAPI v2 messages.

Usage: ``python -m kubeapi.generate [--check] [--fetch] [--gnostic-root DIR]`` (``python -m codegen``
runs it with the other generators).

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
- ``kubeapi/_generated_defaults.py``: the ``default`` of every property that has one (``+default``
  markers such as a port's ``protocol: TCP``, and the Go zero values kube-apiserver serializes for
  non-pointer fields: ``resources: {}``, ``status: {}``), with the way down to them, per served kind;
  :mod:`kubeapi.defaults` applies them. Only what leads to a default is kept.
- ``kubeapi/_generated_inline_fields.py``: the fields of Kubernetes' protobuf messages that are
  embedded Go structs (``json:",inline"``), whose fields JSON shows in the parent object;
  :mod:`kubeapi._protobuf` flattens them. The protos do not mark them: a message field that the
  message's OpenAPI definition lacks while holding all of the field's own fields is one. Read from
  the descriptors of ``k8sproto.api`` (``python -m k8sproto.generate`` first) for the definitions
  of the spec, so messages of kinds not served (``PersistentVolumeSpec``) are not listed.

And from gnostic's ``openapiv2/OpenAPIv2.proto`` (where Debian's ``golang-github-googleapis-gnostic-dev``
installs it, ``make system-deps``; not copied into the repository), ``kubeapi/_openapiv2_pb2.py(i)``:
client-go fetches ``/openapi/v2`` only as protobuf, an ``openapi.v2.Document``. protoc runs with
gnostic's tree as include path, so the descriptor is registered as ``openapiv2/OpenAPIv2.proto`` with
package ``openapi.v2``, as in gnostic itself.

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

import dataclasses
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

from google.protobuf.descriptor import Descriptor

import codegen
from codegen import REPO_ROOT, GenerationError

COMMAND = "kubeapi.generate"
SPEC = REPO_ROOT / "kubeapi" / "openapi-spec" / "kubernetes-v1.36.json"
# Relative to the repository, as every generator names its files.
SCHEMAS_MODULE = Path("kubeapi/_generated_schemas.py")
MERGE_LISTS_MODULE = Path("kubeapi/_generated_merge_lists.py")
INLINE_FIELDS_MODULE = Path("kubeapi/_generated_inline_fields.py")
DEFAULTS_MODULE = Path("kubeapi/_generated_defaults.py")
GNOSTIC_PACKAGE = "golang-github-googleapis-gnostic-dev"
GNOSTIC_ROOT = Path("/usr/share/gocode/src/github.com/googleapis/gnostic")
OPENAPI_V2 = codegen.ProtoFiles(
    COMMAND,
    include=GNOSTIC_ROOT,
    proto=Path("openapiv2/OpenAPIv2.proto"),
    out_dir=Path("kubeapi"),
    names={"OpenAPIv2_pb2.py": "_openapiv2_pb2.py", "OpenAPIv2_pb2.pyi": "_openapiv2_pb2.pyi"},
    source=f"gnostic's openapiv2/OpenAPIv2.proto (Debian {GNOSTIC_PACKAGE})",
    missing_hint=f"install {GNOSTIC_PACKAGE} (Debian) or pass --gnostic-root",
)
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

# A generated module nothing writes any more is stale (and removed by a run).
OWNED = ("kubeapi/_generated_*.py",)

# Kinds served as a subresource only (no list kind): a Deployment's /scale.
SUBRESOURCE_KINDS: set[Kind] = {("autoscaling", "v1", "Scale")}


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
        raise codegen.SourceMissing(f"{path} not found: run python -m kubeapi.generate --fetch")
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
# Defaults

# (property, has a default, the default, definition below it or "", "" | "[]" | "{}": the value itself,
# each item of a list, each value of a map)
DefaultEntry = tuple[str, bool, Any, str, str]


def defaults_table(roots: Iterable[str], schemas: Mapping[str, Schema]) -> dict[str, list[DefaultEntry]]:
    """Per definition reachable from ``roots``, the properties that have a ``default`` or lead to a
    definition that has one (the rest are left out: nothing below them is defaulted)."""
    entries: dict[str, list[DefaultEntry]] = {}
    for name in closure(roots, schemas):
        rows = []
        for prop, sub in sorted((schemas[name].get("properties") or {}).items()):
            resolved, child = _resolve(sub, schemas)
            shape = ""
            if not child and resolved.get("type") == "array":
                _, child = _resolve(resolved.get("items") or {}, schemas)
                shape = "[]"
            elif not child and isinstance(resolved.get("additionalProperties"), dict):
                _, child = _resolve(resolved["additionalProperties"], schemas)
                shape = "{}"
            rows.append((prop, "default" in sub, sub.get("default"), child, shape))
        entries[name] = rows
    # Keep a property when it has a default or its definition keeps one: a fixed point, since
    # definitions may refer to themselves (JSONSchemaProps).
    useful = {name for name, rows in entries.items() if any(r[1] for r in rows)}
    while True:
        more = {name for name, rows in entries.items() if any(r[3] in useful for r in rows)} - useful
        if not more:
            break
        useful |= more
    return {
        name: [r for r in rows if r[1] or r[3] in useful]
        for name, rows in sorted(entries.items())
        if name in useful
    }


# --------------------------------------------------------------------------------------------------
# Rendering


def _header(spec: Mapping[str, Any], also: str = "") -> str:
    source = SPEC.relative_to(REPO_ROOT).as_posix()
    return codegen.header(COMMAND, f"{source} (kube-apiserver {spec['info']['version']}){also}")


def _definition_prefix(package: str) -> str:
    # k8s.io.api.core.v1 -> io.k8s.api.core.v1, the OpenAPI definitions' prefix.
    return "io.k8s." + package.removeprefix("k8s.io.").replace("_", "-")


def _definition(message: Descriptor) -> str:
    package = message.file.package
    return _definition_prefix(package) + message.full_name[len(package) :]


def _messages() -> Iterator[Descriptor]:
    """The top-level messages of every module of ``k8sproto.api``, the committed generated ones."""
    import importlib
    import pkgutil

    import k8sproto.api

    for info in sorted(pkgutil.iter_modules(k8sproto.api.__path__), key=lambda i: i.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"k8sproto.api.{info.name}")
            yield from module.DESCRIPTOR.message_types_by_name.values()


def inline_fields(schemas: Mapping[str, Schema], messages: Iterable[Descriptor]) -> list[tuple[str, str]]:
    """(message, field) of each message field that is an embedded Go struct: the message's OpenAPI
    definition has no property of that name but has every field of the field's own message. Messages
    without a definition in ``schemas``, or whose definition has no properties (a string or a number
    in JSON: Time, Quantity), are skipped."""
    out = []
    for message in messages:
        properties = (schemas.get(_definition(message)) or {}).get("properties")
        if not properties:
            continue
        for field in message.fields:
            if field.name in properties:
                continue
            embedded = field.message_type
            if embedded is None or not {f.name for f in embedded.fields} <= properties.keys():
                raise GenerationError(
                    f"{message.full_name}.{field.name}: neither a property of {_definition(message)} nor"
                    " an embedded struct whose fields it has (protos and spec of different releases?)"
                )
            out.append((message.full_name, field.name))
    return sorted(out)


def render_tables(spec: Mapping[str, Any], messages: Iterable[Descriptor] | None = None) -> dict[Path, str]:
    """The generated modules' texts by path; ``messages`` are k8sproto's (:func:`_messages`) by default."""
    messages = _messages() if messages is None else messages
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
    inline = [
        _header(spec, " and the messages of k8sproto/api"),
        '"""Fields of Kubernetes\' protobuf messages that are embedded Go structs (json inline)."""\n\n',
        "INLINE_FIELDS: frozenset[tuple[str, str]] = frozenset(\n    {\n",
        *(f"        {field!r},\n" for field in inline_fields(schemas, messages)),
        "    }\n)\n",
    ]
    kind_roots = {kind: names[kind] for kind in kinds if kind not in SUBRESOURCE_KINDS}
    table = defaults_table(kind_roots.values(), schemas)
    defaults = [
        _header(spec),
        '"""The OpenAPI ``default`` of built-in kinds\' properties, and the way down to them."""\n\n',
        "from typing import Any\n\n",
        "# (group, version, kind) -> the definition its objects start at.\n",
        "KINDS: dict[tuple[str, str, str], str] = {\n",
        *(f"    {kind!r}: {name!r},\n" for kind, name in kind_roots.items() if name in table),
        "}\n\n",
        "# definition -> (property, has a default, default, definition below or '', '' | '[]' | '{}').\n",
        "DEFAULTS: dict[str, tuple[tuple[str, bool, Any, str, str], ...]] = {\n",
    ]
    for name, rows in table.items():
        defaults.append(f"    {name!r}: (\n")
        defaults.extend(f"        {row!r},\n" for row in rows)
        defaults.append("    ),\n")
    defaults.append("}\n")
    return {
        SCHEMAS_MODULE: "".join(lines),
        MERGE_LISTS_MODULE: "".join(merge),
        INLINE_FIELDS_MODULE: "".join(inline),
        DEFAULTS_MODULE: "".join(defaults),
    }


def render(gnostic_root: Path = GNOSTIC_ROOT) -> dict[Path, str]:
    """Every module this command generates, keyed by its path in the repository."""
    return {
        **render_tables(load_spec()),
        **dataclasses.replace(OPENAPI_V2, include=gnostic_root).render(),
    }


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
        prefix = _definition_prefix(package.group(1))
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
    parser = codegen.arguments(COMMAND, __doc__)
    parser.add_argument(
        "--fetch", action="store_true", help="refresh the spec from a real kube-apiserver first"
    )
    parser.add_argument("--control-plane", type=Path, default=CONTROL_PLANE, help="run-control-plane.sh")
    parser.add_argument("--gnostic-root", type=Path, default=GNOSTIC_ROOT, help="gnostic's source tree")
    opts = parser.parse_args(argv)
    if opts.fetch and opts.check:
        parser.error("--fetch writes the spec: not with --check")
    if opts.fetch:
        try:
            spec = fetch(opts.control_plane)
        except GenerationError as exc:
            print(f"{COMMAND}: error: {exc}", file=sys.stderr)
            return 2
        SPEC.parent.mkdir(parents=True, exist_ok=True)
        SPEC.write_text(spec_text(spec), encoding="utf-8")
        print(f"wrote {SPEC} ({len(spec['components']['schemas'])} definitions)")
    return codegen.run(
        COMMAND, lambda: render(opts.gnostic_root), check=opts.check, root=opts.root, owned=OWNED
    )


if __name__ == "__main__":
    raise SystemExit(main())

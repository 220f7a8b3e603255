"""The one configuration loader: YAML file + overrides -> a validated pydantic model.

Every process (apiserver, cloudcore, edgecore, mappers) describes its configuration as a pydantic
model with ``extra="forbid"`` and loads it here, so a misspelt key is reported with its path rather
than silently ignored.

A model may also read another program's format (``ConfigModel.foreign_formats``, by the file's
``apiVersion``; edgecore reads KubeEdge's ``edgecore.yaml``): the file is translated into the model's
own keys first, the keys without a meaning here are named in one warning line, and a validation error
names the key as the file spelt it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kubeshore import filemodes, mergepatch

ConfigT = TypeVar("ConfigT", bound=BaseModel)

log = logging.getLogger("kubeshore.config")


@dataclass
class Translated:
    """A foreign configuration in a model's own (camelCase) keys.

    ``ignored`` names the foreign keys that have no meaning here; ``origin`` maps a translated key path
    (``edgeHub.server``) to the foreign one it came from, so errors name what the user wrote."""

    data: dict[str, Any]
    ignored: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)


class ConfigModel(BaseModel):
    """Base for configuration files: unknown keys are errors, names are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    # Other programs' formats this model also reads, by ``apiVersion``. A translator raises
    # ``ConfigError`` for a value it cannot carry over.
    foreign_formats: ClassVar[Mapping[str, Callable[[dict[str, Any]], Translated]]] = {}


class ConfigError(Exception):
    """A configuration file or override is invalid; the message names every bad key."""


def format_validation_error(
    source: str, err: ValidationError, origin: Mapping[str, str] | None = None
) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        if origin and path in origin:
            path = f"{origin[path]} (kubeshore {path})"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _translate(model: type[BaseModel], data: dict[str, Any], source: str) -> Translated | None:
    """The foreign format ``data`` is in, translated; None when it is the model's own format."""
    if "apiVersion" not in data or any(
        f.alias == "apiVersion" or name == "apiVersion" for name, f in model.model_fields.items()
    ):
        return None
    formats: Mapping[str, Callable[[dict[str, Any]], Translated]] = getattr(model, "foreign_formats", {})
    api_version = data["apiVersion"]
    reader = formats.get(api_version) if isinstance(api_version, str) else None
    if reader is None:
        known = ", ".join(sorted(formats)) or "none"
        raise ConfigError(
            f"{source}: apiVersion {api_version!r} is not a format this program reads "
            f"(its own format has no apiVersion; other formats it reads: {known})"
        )
    try:
        translated = reader(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if translated.ignored:
        log.warning(
            "%s (%s): keys with no meaning in kubeshore, ignored: %s",
            source,
            api_version,
            ", ".join(translated.ignored),
        )
    return translated


def load_config(
    model: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ConfigT:
    """Read ``path`` (if given), deep-merge ``overrides`` (command-line flags) and validate.

    Overrides whose value is ``None`` are dropped, so unset flags never mask the file.
    """
    data: dict[str, Any] = {}
    source = "<flags>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
        import yaml  # here, not at import: processes configured by flags only never load it

        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping, not {type(loaded).__name__}")
        data = loaded
    translated = _translate(model, data, source)
    if translated is not None:
        data = translated.data
    if overrides:
        data = mergepatch.apply(data, _drop_none(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        origin = translated.origin if translated is not None else None
        raise ConfigError(format_validation_error(source, exc, origin)) from exc


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v is None:
            continue
        out[k] = _drop_none(v) if isinstance(v, dict) else v
    return out


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write a configuration as YAML with its JSON (camelCase) names, readable by ``load_config``."""
    import yaml

    # Configurations may hold credentials (mqttPassword, tokens): owner-only like keys.
    filemodes.write_private(
        Path(path), yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False).encode()
    )

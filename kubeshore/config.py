"""The one configuration loader: YAML file + overrides -> a validated pydantic model.

Every process (apiserver, cloudcore, edgecore, mappers) describes its configuration as a pydantic
model with ``extra="forbid"`` and loads it here, so a misspelt key is reported with its path rather
than silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kubeshore import filemodes

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ConfigModel(BaseModel):
    """Base for configuration files: unknown keys are errors, names are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class ConfigError(Exception):
    """A configuration file or override is invalid; the message names every bad key."""


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


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
    if overrides:
        data = _merge(data, _drop_none(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


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

"""The configuration: one JSON Schema, defaults filled in, errors that name the key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from accord.errors import ConfigError
from accord.validate import StudyInput


def schema() -> dict:
    """The configuration schema shipped with the package (also workflow/schemas/)."""
    text = resources.files("accord").joinpath("schemas/config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and return it validated, with every default filled in."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"The config file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}.") from None
    return validate_config(data or {})


def validate_config(config: Mapping[str, Any]) -> dict:
    """Check `config` against the schema; return a copy with defaults filled in.

    Raises ConfigError naming the offending key, e.g. ``studies.demo.missing_codes[0]``.
    """
    config = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise ConfigError(_describe(errors[0], len(errors)))
    _check_study_formats(config["studies"])
    _fill_defaults(config, schema())
    return config


def _check_study_formats(studies: Mapping[str, Any]) -> None:
    """A mapped or REDCap study needs a mapping; a contract study has none."""
    for name, entry in studies.items():
        kind = entry.get("format", "contract")
        if kind != "contract" and not entry.get("mapping"):
            raise ConfigError(
                f"config key 'studies.{name}.mapping': is required for format {kind} "
                "(which source columns become which contract columns)"
            )
        for setting in ("mapping", "redcap"):
            if setting in entry and kind not in (
                ("mapped", "redcap") if setting == "mapping" else ("redcap",)
            ):
                raise ConfigError(
                    f"config key 'studies.{name}.{setting}': does not apply to format {kind}; "
                    "set studies.<study>.format"
                )


def _describe(error: jsonschema.ValidationError, count: int) -> str:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # A table map may be one map or a list of them: explain the closest alternative.
        deepest = max(len(e.absolute_path) for e in error.context)
        candidates = [e for e in error.context if len(e.absolute_path) == deepest]
        error = jsonschema.exceptions.best_match(
            [e for e in candidates if e.validator != "type"] or candidates
        )
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        key = _key_path([*error.absolute_path, extra[0]]) if extra else key
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        message = f"unknown setting (allowed here: {allowed})"
    elif error.validator == "required":
        missing = error.message.split("'")[1]
        key = _key_path([*error.absolute_path, missing])
        message = "is required"
    elif error.validator == "enum":
        message = "must be one of " + ", ".join(str(v) for v in error.validator_value)
    elif error.validator == "type":
        message = f"must be of type {error.validator_value}"
    elif error.validator == "propertyNames":
        message = "names may hold only letters, digits, '_' and '-'"
    else:
        # jsonschema's own message may quote the offending value; name the rule instead.
        message = f"breaks the rule '{error.validator}: {error.validator_value}'"
    more = f" ({count - 1} more problem(s) after this one)" if count > 1 else ""
    return f"config key '{key or '<top level>'}': {message}{more}"


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fill_defaults(node: Any, spec: Mapping[str, Any]) -> None:
    if not isinstance(node, dict):
        return
    for name, sub in spec.get("properties", {}).items():
        if name not in node and "default" in sub:
            node[name] = copy.deepcopy(sub["default"])
        if name in node:
            _fill_defaults(node[name], sub)
    extra = spec.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in node.items():
            if name not in spec.get("properties", {}):
                _fill_defaults(value, extra)


def study_input(config: Mapping[str, Any], study: str, root: str | Path = ".") -> StudyInput:
    """The settings of one study, with its path resolved against `root`."""
    studies = config["studies"]
    if study not in studies:
        known = ", ".join(sorted(studies))
        raise ConfigError(f"config key 'studies.{study}': no such study (configured: {known})")
    entry = studies[study]
    path = Path(entry["path"])
    return StudyInput(
        name=study,
        path=path if path.is_absolute() else Path(root) / path,
        missing_codes=tuple(entry.get("missing_codes", ())),
        extra_columns={k: tuple(v) for k, v in entry.get("extra_columns", {}).items()},
        acknowledged_columns=tuple(entry.get("acknowledged_columns", ())),
        quasi_identifier_k=config.get("privacy", {}).get("quasi_identifier_k", 5),
        format=entry.get("format", "contract"),
        entry=copy.deepcopy(dict(entry)),
    )

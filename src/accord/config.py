"""The configuration: one JSON Schema, defaults filled in, errors that name the key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from accord.core.errors import ConfigError
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
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text.") from None
    except OSError as exc:
        from accord.core.io import describe_os_error

        raise ConfigError(f"{path}: {describe_os_error(exc)}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}.") from None
    if data is not None and not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(
            f"{path}: the config holds {kind}; it must be a mapping of settings "
            "(studies:, analysis:, models:, ...)."
        )
    return validate_config(data or {})


def validate_config(config: Mapping[str, Any]) -> dict:
    """Check `config` against the schema; return a copy with defaults filled in.

    Raises ConfigError naming the offending key, e.g. ``studies.demo.missing_codes[0]``.
    """
    if not isinstance(config, Mapping):
        kind = "a list" if isinstance(config, list) else f"a {type(config).__name__}"
        raise ConfigError(
            f"config: the file holds {kind}; it must be a mapping of settings "
            "(studies:, analysis:, models:, ...)"
        )
    config = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise ConfigError(_describe(errors[0], len(errors)))
    spec = schema()
    _fill_defaults(config, spec)
    if not config["studies"] and not config.get("consortia"):
        raise ConfigError(
            "config key 'studies': is empty; give at least one study (or a consortium)"
        )
    _check_study_formats(config["studies"])
    _check_outcomes(config)
    _check_mediation_methods(config)
    _check_simulation_effects(config)
    _add_simulated_sites(config)
    _fill_defaults(config, spec)
    return config


def _add_simulated_sites(config: dict[str, Any]) -> None:
    """Each consortium with `simulate` gains its sites: one simulated study per site.

    Site ``site_k`` of consortium ``net`` becomes study ``net_site_k`` (folder
    ``<path>/site_k``) with the settings `accord.simulate.consortium_site_settings` draws, and
    the consortium's site ``site_k`` is that study. Validating the result again changes
    nothing; a name already taken by something else is an error.
    """
    from accord.simulate import consortium_site_settings

    for name, entry in (config.get("consortia") or {}).items():
        settings = entry.get("simulate")
        if not settings:
            continue
        design = {k: v for k, v in settings.items() if k not in ("path", "effects")}
        try:
            drawn = consortium_site_settings(**design, **settings.get("effects", {}))
        except ConfigError as exc:
            raise ConfigError(f"config key 'consortia.{name}.simulate': {exc}") from None
        sites = entry.setdefault("sites", {})
        for site, site_settings in drawn.items():
            study = f"{name}_{site}"
            generated = {
                "path": f"{settings['path'].rstrip('/')}/{site}",
                "simulate": site_settings,
            }
            existing = config["studies"].get(study)
            if existing is not None and {k: existing.get(k) for k in generated} != generated:
                raise ConfigError(
                    f"config key 'studies.{study}': the name of a simulated site of consortium "
                    f"{name!r}; give the study another name"
                )
            if site in sites and sites[site] != {"study": study}:
                raise ConfigError(
                    f"config key 'consortia.{name}.sites.{site}': the name of one of the "
                    "consortium's simulated sites; give this site another name"
                )
            config["studies"].setdefault(study, generated)
            sites[site] = {"study": study}


def _check_outcomes(config: Mapping[str, Any]) -> None:
    """Outcomes name an instrument's score and instrument-score covariates a known score, so a
    typo stops the run before any model is fitted (the custom instruments are checked too)."""
    from accord.core.instruments import load_registry
    from accord.measures.change import CHANGE_COLUMNS

    registry = load_registry(config.get("instruments") or None)
    scores = {key: set(instrument.scales) for key, instrument in registry.items()}
    known = sorted(scores)
    analysis = config.get("analysis", {})
    named = [("analysis.primary_outcome", analysis.get("primary_outcome"))]
    named += [
        (f"analysis.secondary_outcomes[{i}]", outcome)
        for i, outcome in enumerate(analysis.get("secondary_outcomes") or [])
    ]
    for key, outcome in named:
        instrument, _, score = str(outcome).partition(".")
        if instrument not in scores:
            raise ConfigError(
                f"config key '{key}': {outcome!r} is not an instrument (known: {', '.join(known)})"
            )
        if score and score not in scores[instrument]:
            raise ConfigError(
                f"config key '{key}': {instrument} has no score {score!r} (its scores: "
                f"{', '.join(sorted(scores[instrument]))})"
            )
    stems = {key for key in scores} | {f"{k}_{sub}" for k in scores for sub in scores[k]}
    for i, entry in enumerate(config.get("models") or []):
        for j, covariate in enumerate(entry.get("covariates") or []):
            stem = next(
                (
                    str(covariate)[: -len(s) - 1]
                    for s in CHANGE_COLUMNS
                    if str(covariate).endswith(f"_{s}")
                ),
                None,
            )
            if stem and stem not in stems:
                raise ConfigError(
                    f"config key 'models[{i}].covariates[{j}]': {covariate!r} names no "
                    f"instrument score (instruments: {', '.join(known)})"
                )


def _check_mediation_methods(config: Mapping[str, Any]) -> None:
    """A mediation model's option ``method`` is one the fit knows, so a typo stops the run
    before any job."""
    from accord.models.spec import MEDIATION_METHODS

    for i, entry in enumerate(config.get("models") or []):
        method = (entry.get("options") or {}).get("method", "auto")
        if entry.get("kind") == "mediation" and method not in MEDIATION_METHODS:
            raise ConfigError(
                f"config key 'models[{i}].options.method': {method!r} is not a mediation "
                f"method (one of {', '.join(MEDIATION_METHODS)})"
            )


def _check_simulation_effects(config: Mapping[str, Any]) -> None:
    """Planted effects must be ones the simulator knows."""
    from accord.simulate import Effects

    known = {field.name for field in fields(Effects)}
    places = [
        (f"studies.{name}.simulate.effects", entry.get("simulate", {}).get("effects", {}))
        for name, entry in config["studies"].items()
    ] + [
        (f"consortia.{name}.simulate.effects", entry.get("simulate", {}).get("effects", {}))
        for name, entry in (config.get("consortia") or {}).items()
    ]
    for key, effects in places:
        for effect in sorted(set(effects) - known):
            raise ConfigError(
                f"config key '{key}.{effect}': not an effect of the simulator (known: "
                f"{', '.join(sorted(known))})"
            )


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
        categories={k: tuple(str(v) for v in vs) for k, vs in entry.get("categories", {}).items()},
        decimal=entry.get("decimal", "."),
        quasi_identifier_k=config.get("privacy", {}).get("quasi_identifier_k", 5),
        format=entry.get("format", "contract"),
        entry=copy.deepcopy(dict(entry)),
    )

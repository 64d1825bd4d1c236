"""A consortium's config entry: its sites, the terms to pool and how.

```yaml
consortia:
  goals_network:
    sites:
      north: {study: north}                       # a study of this config (row-level data)
      south: {study: south}
      east: {results: shared/east/models}         # results a site shared: a folder, or
                                                  # its coefficients.csv (diagnostics.json beside)
    pool:                                         # default: every model's exposure effect
      - {model: growth}                           #   that all sites report
    method: paule_mandel                          # or dersimonian_laird
    one_stage: true                               # the local sites' rows may be pooled
```

A consortium's ``simulate`` settings add simulated sites (accord.config expands them into
studies before this module reads the entry; see accord.simulate.consortium_site_settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.core.errors import ConfigError

METHODS = ("paule_mandel", "dersimonian_laird")
DEFAULT_METHOD = "paule_mandel"
MIN_SITES = 2


@dataclass(frozen=True)
class Site:
    """One member site: a study of this config (`study`) or results shared by the site."""

    name: str
    study: str | None
    coefficients: Path
    diagnostics: Path

    @property
    def source(self) -> str:
        """``"study"`` for a local study (row-level data available), else ``"results"``."""
        return "study" if self.study is not None else "results"


@dataclass(frozen=True)
class PoolTarget:
    """A model (and optionally one of its terms; default: its exposure effects) to pool."""

    model: str
    term: str | None = None


@dataclass(frozen=True)
class Consortium:
    """A consortium as configured; sites are in name order."""

    name: str
    sites: tuple[Site, ...]
    pool: tuple[PoolTarget, ...]
    method: str = DEFAULT_METHOD
    one_stage: bool = False

    @property
    def local_sites(self) -> tuple[Site, ...]:
        """The sites whose row-level data this config holds."""
        return tuple(site for site in self.sites if site.study is not None)


def study_results_folder(study: str) -> Path:
    """Where the workflow writes a study's model results fit to share (rule share_models:
    small counts of clients withheld, `accord.core.disclosure.shareable_record`). Two-stage pooling
    reads a local site's shared copy, as a remote site's, never the study's own models/."""
    return Path("results") / study / "shared"


def consortia(config: Mapping[str, Any]) -> dict[str, Consortium]:
    """Every consortium of `config` (key ``consortia``), checked against the studies.

    Raises ConfigError naming the key for a site that names an unknown study, a site with both
    or neither of `study` and `results`, fewer than two sites, an unknown method, or one-stage
    pooling asked for with fewer than two local sites.
    """
    studies = config.get("studies", {})
    out = {}
    for name, entry in (config.get("consortia") or {}).items():
        key = f"consortia.{name}"
        sites_entry = entry.get("sites") or {}
        if len(sites_entry) < MIN_SITES:
            raise ConfigError(f"config key '{key}.sites': a consortium needs at least 2 sites")
        sites = [
            _site(f"{key}.sites.{site}", site, sites_entry[site], studies)
            for site in sorted(sites_entry)
        ]
        method = entry.get("method", DEFAULT_METHOD)
        if method not in METHODS:
            raise ConfigError(f"config key '{key}.method': must be one of {', '.join(METHODS)}")
        pool = tuple(
            PoolTarget(model=str(item["model"]), term=item.get("term"))
            for item in entry.get("pool") or ()
        )
        consortium = Consortium(
            name=name,
            sites=tuple(sites),
            pool=pool,
            method=method,
            one_stage=bool(entry.get("one_stage", False)),
        )
        if consortium.one_stage and len(consortium.local_sites) < MIN_SITES:
            raise ConfigError(
                f"config key '{key}.one_stage': the one-stage model needs the row-level data "
                f"of at least 2 sites (sites with `study:`); this consortium has "
                f"{len(consortium.local_sites)}"
            )
        out[name] = consortium
    return out


def _site(key: str, name: str, entry: Mapping[str, Any], studies: Mapping[str, Any]) -> Site:
    if not name.isidentifier():
        raise ConfigError(
            f"config key '{key}': a site name may hold only letters, digits and '_' and "
            "must not start with a digit"
        )
    has_study, has_results = "study" in entry, "results" in entry
    if has_study == has_results:
        raise ConfigError(
            f"config key '{key}': give either `study` (a study of this config) or `results` "
            "(a site's shared coefficients.csv or its folder), not both or neither"
        )
    if has_study:
        study = str(entry["study"])
        if study not in studies:
            known = ", ".join(sorted(studies))
            raise ConfigError(
                f"config key '{key}.study': no such study {study!r} (configured: {known})"
            )
        folder = study_results_folder(study)
        return Site(name, study, folder / "coefficients.csv", folder / "diagnostics.json")
    given = Path(str(entry["results"]))
    coefficients = given if given.suffix == ".csv" else given / "coefficients.csv"
    diagnostics = Path(entry.get("diagnostics") or coefficients.parent / "diagnostics.json")
    return Site(name, None, coefficients, diagnostics)

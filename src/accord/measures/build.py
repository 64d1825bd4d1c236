"""Per-client measures and the session panel, built from validated tables and scores.

Every choice that measures.md marks as a choice is a field of `MeasureSettings` (defaults from
measures.md); `MeasureSettings.to_metadata()` records the choices next to the outputs.

Missing values: counts are Int64, flags are boolean, categories are string (all with NA for
"not defined"); continuous measures are float64 with NaN for "not defined".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import AccordError, ConfigError
from accord.core.partitions import gather_columns
from accord.measures.alliance import alliance_measures
from accord.measures.change import (
    CHANGE_COLUMNS,
    CHANGE_METHODS,
    CLINICAL_CUTOFFS,
    NHS_COLUMNS,
    SD_SOURCES,
    THRESHOLD_COLUMNS,
    nhs_indicators,
    outcome_change,
    response_remission,
)
from accord.measures.engagement import DROPOUT_DEFINITIONS, engagement_measures
from accord.measures.goalsetting import OUTCOME_ONLY, goal_measures
from accord.measures.panel import (
    ScoreTable,
    client_codes,
    client_index,
    flag,
    panel_series,
    require_columns,
    session_panel,
)
from accord.measures.statistics import MeasureStatistics, combine_statistics, measure_statistics

RATERS = ("client", "therapist", "observer")
#: ``end_of_treatment``: the last attended session of a treatment that ended as planned.
END_COMPLETED = "completed"
#: Client measures that can serve as the primary exposure (measures.md, goal-setting section).
EXPOSURES = (
    "joint_goal_share",
    "goal_alliance_client",
    "goal_consensus",
    "goal_agreement",
    "smart_quality",
    "goal_review_rate",
    "goal_revisions",
    "arm",
)
CLIENT_COLUMNS = ("therapist_id", "site_id", "arm")


@dataclass(frozen=True)
class MeasureSettings:
    """The choices behind the per-client measures and the panel (defaults: measures.md).

    dropout_definition: `end_reason`, `min_sessions` (fewer than `dropout_min_sessions`
        attended) or `last_scheduled_missed`; all three are reported, this one is `dropout`.
    alliance_instrument / _scale / _rater: the alliance series (WAI-SR total, client-rated; the
        SRS total also works). goal_alliance_instrument / _scale: the goal-alliance scale
        (WAI-SR Goal subscale): client-rated for goal_alliance_client, client against therapist
        for goal_consensus.
    early_sessions: assessed sessions averaged for early_alliance and goal_alliance_client (and
        the window of goal_consensus); goals set by this session count toward the exposures;
        scheduled sessions (session_number <= early_sessions) for early_attendance_rate and
        early_homework_rate.
    rupture_sds, rupture_repair_window: rupture size in client SDs (one column pair per value)
        and the assessed sessions within which a rupture counts as repaired.
    srs_instrument, srs_alert_threshold, srs_alert_drop: SRS alerts (below 36, or a drop of 1).
    gas_rater: whose GAS ratings give gas_t.
    outcome_instruments: instrument keys for the change measures; None = every registry
        instrument with a cut-off that is scored in the study, except the process measures.
    outcome_rater: whose totals count as outcomes.
    change_method: `published` (the published reliable-change value where there is one, else the
        RCI) or `rci` (Jacobson-Truax RCI where reliability is known).
    clinical_cutoff: `registry` or Jacobson-Truax `a`, `b`, `c` (where the norms are known).
    rci_sd_source: `intake` (SD of the study's first assessments) or `norms` (clinical norm SD).
    rci_z: the RCI criterion (1.96).
    end_of_treatment: the end-of-treatment (post) assessment: a session number (every client's
        post score is the score at that session), or ``completed`` (the last attended session
        of clients whose treatment ended as planned, end_reason completed; everyone else has no
        post score). A client not assessed there has a MISSING post score.
    primary_exposure: the client measure the models treat as the primary exposure.
    """

    dropout_definition: str = "end_reason"
    dropout_min_sessions: int = 2
    alliance_instrument: str = "wai_sr"
    alliance_scale: str = "total"
    alliance_rater: str = "client"
    goal_alliance_instrument: str = "wai_sr"
    goal_alliance_scale: str = "goal"
    early_sessions: int = 3
    rupture_sds: tuple[float, ...] = (1, 2)
    rupture_repair_window: int = 3
    srs_instrument: str = "srs"
    srs_alert_threshold: float = 36
    srs_alert_drop: float = 1
    gas_rater: str = "client"
    outcome_instruments: tuple[str, ...] | None = None
    outcome_rater: str = "client"
    change_method: str = "published"
    clinical_cutoff: str = "registry"
    rci_sd_source: str = "intake"
    rci_z: float = 1.96
    end_of_treatment: int | str = END_COMPLETED
    primary_exposure: str = "joint_goal_share"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rupture_sds", tuple(self.rupture_sds))
        if self.outcome_instruments is not None:
            object.__setattr__(self, "outcome_instruments", tuple(self.outcome_instruments))
        choices = {
            "dropout_definition": DROPOUT_DEFINITIONS,
            "change_method": CHANGE_METHODS,
            "clinical_cutoff": CLINICAL_CUTOFFS,
            "rci_sd_source": SD_SOURCES,
            "alliance_rater": RATERS,
            "gas_rater": RATERS,
            "outcome_rater": RATERS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"measures.{name} is {getattr(self, name)!r}; choose one of {list(allowed)}"
                )
        for name in ("dropout_min_sessions", "early_sessions", "rupture_repair_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"measures.{name} must be a whole number of at least 1")
        if not self.rupture_sds or any(k <= 0 for k in self.rupture_sds):
            raise ConfigError("measures.rupture_sds must list positive numbers of SDs")
        if self.rci_z <= 0:
            raise ConfigError("measures.rci_z must be positive")
        if self.primary_exposure in OUTCOME_ONLY:
            raise ConfigError(
                f"measures.primary_exposure {self.primary_exposure!r} is a goal-attainment "
                "outcome (attainment follows treatment), never an exposure; choose from "
                f"{list(EXPOSURES)}"
            )
        end = self.end_of_treatment
        if end != END_COMPLETED and (isinstance(end, bool) or not isinstance(end, int) or end < 1):
            raise ConfigError(
                f"analysis.end_of_treatment is {end!r}; give a session number of at least 1 or "
                f"{END_COMPLETED!r}"
            )
        if self.primary_exposure not in EXPOSURES:
            raise ConfigError(
                f"measures.primary_exposure {self.primary_exposure!r} is not a goal-setting "
                f"exposure; choose from {list(EXPOSURES)}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MeasureSettings:
        """Settings from a config mapping of field names; an unknown key is an error."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"measures: unknown setting {unknown[0]!r}; known: {sorted(known)}")
        return cls(**values)

    def to_metadata(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class MeasuresResult:
    """Outputs of `build_measures`: the two tables, the change thresholds and the metadata."""

    client_measures: pd.DataFrame
    session_panel: pd.DataFrame
    change_thresholds: pd.DataFrame
    metadata: dict[str, Any]


def _instrument(registry: Any, key: str) -> Any | None:
    """Look an instrument up in a registry (a mapping or anything with `get`/`[]`)."""
    getter = getattr(registry, "get", None)
    try:
        return getter(key) if callable(getter) else registry[key]
    except (LookupError, TypeError, AccordError):
        return None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _outcome_keys(
    registry: Any, settings: MeasureSettings, study: MeasureStatistics
) -> tuple[str, ...]:
    """The outcome instruments: those the settings name, or else every registry instrument with
    a cut-off that has outcome-rater totals in this study, leaving out the process measures
    (the alliance, goal-consensus and SRS instruments: the SRS cut-off is an alert threshold)."""
    if settings.outcome_instruments is not None:
        return settings.outcome_instruments
    scored = set(study.score_groups)
    process = {
        settings.alliance_instrument,
        settings.goal_alliance_instrument,
        settings.srs_instrument,
    }
    return tuple(
        key
        for key in registry
        if key not in process
        and getattr(_instrument(registry, key), "cutoff", None) is not None
        and (key, "total", settings.outcome_rater) in scored
    )


def end_sessions(
    sessions: pd.DataFrame,
    client_ids: pd.Index,
    end_reason: pd.Series | None,
    end_of_treatment: int | str,
) -> np.ndarray:
    """Each client's end-of-treatment session number (NaN: no end assessment), see
    `MeasureSettings.end_of_treatment`."""
    n = len(client_ids)
    if end_of_treatment != END_COMPLETED:
        return np.full(n, float(end_of_treatment))
    out = np.full(n, np.nan)
    if end_reason is None or not len(sessions):
        return out
    code = client_codes(sessions["client_id"], client_ids)
    attended = flag(sessions["status"], "attended") & (code >= 0)
    session = sessions["session_number"].to_numpy(dtype=np.float64)
    last = np.full(n, -np.inf)
    np.maximum.at(last, code[attended], session[attended])
    completed = np.asarray(
        end_reason.reindex(client_ids).astype("string").eq(END_COMPLETED).fillna(False), bool
    )
    keep = completed & np.isfinite(last)
    out[keep] = last[keep]
    return out


def _outcomes(
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    registry: Any,
    settings: MeasureSettings,
    end_session: np.ndarray,
    study: MeasureStatistics,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """`<key>_<measure>` columns for every outcome instrument and PHQ-9 response/remission; also
    the change thresholds and each instrument's unprefixed frame."""
    columns: dict[str, Any] = {}
    thresholds: list[dict[str, Any]] = []
    frames: dict[str, pd.DataFrame] = {}
    options = {
        "clinical_cutoff": settings.clinical_cutoff,
        "sd_source": settings.rci_sd_source,
        "rater": settings.outcome_rater,
        "z": settings.rci_z,
        "end_session": end_session,
    }
    for key in _outcome_keys(registry, settings, study):
        instrument = _instrument(registry, key)
        if instrument is None:
            raise ConfigError(
                f"measures.outcome_instruments: {key!r} is not in the instrument registry"
            )
        try:
            frame, info = outcome_change(
                scores,
                client_ids,
                instrument,
                method=settings.change_method,
                baseline=study.baseline(key),
                **options,
            )
        except ValueError as error:
            raise ConfigError(f"measures: {error}") from error
        frames[key] = frame
        thresholds.append(info)
        for column in CHANGE_COLUMNS:
            columns[f"{key}_{column}"] = frame[column]
        if key == "phq9":
            extra = response_remission(frame, at="post")
            columns["phq9_response"] = extra["response"]
            columns["phq9_remission"] = extra["remission"]
    table = pd.DataFrame(columns, index=client_ids)
    return table, pd.DataFrame(thresholds, columns=list(THRESHOLD_COLUMNS)), frames


def _nhs(
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    registry: Any,
    settings: MeasureSettings,
    frames: dict[str, pd.DataFrame],
    sessions_attended: pd.Series,
    end_reason: pd.Series | None,
    study: MeasureStatistics,
) -> pd.DataFrame:
    """NHS Talking Therapies indicators, always on the published reliable-change values."""
    phq9, gad7 = _instrument(registry, "phq9"), _instrument(registry, "gad7")
    if phq9 is None or gad7 is None:
        return pd.DataFrame(
            {c: pd.array([pd.NA] * len(client_ids), dtype="boolean") for c in NHS_COLUMNS},
            index=client_ids,
        )
    paired = {}
    for key, instrument in (("phq9", phq9), ("gad7", gad7)):
        reuse = key in frames and settings.change_method == "published"
        paired[key] = (
            frames[key]
            if reuse
            else outcome_change(
                scores,
                client_ids,
                instrument,
                method="published",
                sd_source=settings.rci_sd_source,
                rater=settings.outcome_rater,
                z=settings.rci_z,
                baseline=study.baseline(key),
            )[0]
        )

    def caseness(instrument: Any) -> float:
        value = getattr(instrument, "caseness", None)
        value = instrument.cutoff if value is None else value
        if value is None:
            raise ConfigError(f"instrument {instrument.key!r} needs a caseness or cutoff value")
        return float(value)

    return nhs_indicators(
        paired["phq9"],
        paired["gad7"],
        sessions_attended,
        end_reason,
        phq9_caseness=caseness(phq9),
        gad7_caseness=caseness(gad7),
    )


def _client_columns(clients: pd.DataFrame, client_ids: pd.Index) -> pd.DataFrame:
    ordered = clients.drop_duplicates("client_id").set_index("client_id").reindex(client_ids)
    out = pd.DataFrame(index=client_ids)
    for column in CLIENT_COLUMNS:
        if column in ordered.columns:
            out[column] = ordered[column]
        else:
            out[column] = pd.Series(pd.NA, index=client_ids, dtype="string")
    return out


def _client_measures(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    registry: Any,
    settings: MeasureSettings,
    study: MeasureStatistics,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    require_columns(clients, ["client_id", "therapist_id"], "clients")
    client_ids = client_index(clients)
    end_reason = None
    if "end_reason" in clients.columns:
        end_reason = clients.drop_duplicates("client_id").set_index("client_id")["end_reason"]
    engagement = engagement_measures(
        sessions,
        client_ids,
        end_reason,
        dropout_definition=settings.dropout_definition,
        min_sessions=settings.dropout_min_sessions,
        early_sessions=settings.early_sessions,
    )
    alliance = alliance_measures(
        scores,
        client_ids,
        instrument=settings.alliance_instrument,
        scale=settings.alliance_scale,
        rater=settings.alliance_rater,
        early_sessions=settings.early_sessions,
        rupture_sds=settings.rupture_sds,
        repair_window=settings.rupture_repair_window,
        srs_instrument=settings.srs_instrument,
        srs_threshold=settings.srs_alert_threshold,
        srs_drop=settings.srs_alert_drop,
    )
    goal_setting = goal_measures(
        goals,
        scores,
        client_ids,
        goal_instrument=settings.goal_alliance_instrument,
        goal_scale=settings.goal_alliance_scale,
        early_sessions=settings.early_sessions,
        gas_rater=settings.gas_rater,
        study_has_goals=study.has_goals,
    )
    end_session = end_sessions(sessions, client_ids, end_reason, settings.end_of_treatment)
    outcomes, thresholds, frames = _outcomes(
        scores, client_ids, registry, settings, end_session, study
    )
    attended = engagement["sessions_attended"]
    nhs = _nhs(scores, client_ids, registry, settings, frames, attended, end_reason, study)
    table = pd.concat(
        [
            _client_columns(clients, client_ids),
            engagement,
            alliance,
            goal_setting,
            outcomes,
            nhs,
        ],
        axis=1,
    )
    return table.reset_index(), thresholds


def build_client_measures(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | None,
    registry: Any,
    settings: MeasureSettings | None = None,
) -> pd.DataFrame:
    """One row per client (sorted by client_id): engagement, alliance, goal-setting and outcome
    change measures, named as in measures.md and the data contract."""
    settings = settings or MeasureSettings()
    scores = ScoreTable.of(scores, client_index(clients))
    study = study_statistics([(clients, goals, scores)], settings)
    table, _ = _client_measures(clients, sessions, goals, scores, registry, settings, study)
    return table


def build_session_panel(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    scores: pd.DataFrame | None,
    registry: Any = None,
    settings: MeasureSettings | None = None,
) -> pd.DataFrame:
    """One row per client and session (see `accord.measures.panel.session_panel` for the columns).

    `registry` is accepted so that both builders take the same arguments; the panel needs no
    instrument facts beyond the scores themselves.
    """
    settings = settings or MeasureSettings()
    scores = ScoreTable.of(scores, client_index(clients))
    study = study_statistics([(clients, None, scores)], settings)
    return _panel(clients, sessions, scores, settings, study)


def _centred(settings: MeasureSettings) -> dict[str, tuple[str, str, str]]:
    return panel_series(
        (settings.alliance_instrument, settings.alliance_scale, settings.alliance_rater),
        (settings.goal_alliance_instrument, settings.goal_alliance_scale, "client"),
    )


def _panel(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    scores: pd.DataFrame | ScoreTable | None,
    settings: MeasureSettings,
    study: MeasureStatistics,
) -> pd.DataFrame:
    centred = _centred(settings)
    panel, _ = session_panel(
        clients,
        sessions,
        scores,
        alliance=centred["alliance"],
        goal_alliance_client=centred["goal_alliance_client"],
        score_groups=study.score_groups,
        grand_means=study.grand_means(),
    )
    return panel


def partition_statistics(
    clients: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    settings: MeasureSettings | None = None,
) -> MeasureStatistics:
    """Pass 1 on a partition of the study's clients (or all of them): the counts and exact sums
    behind the study-wide scalars (`accord.measures.statistics`)."""
    settings = settings or MeasureSettings()
    return measure_statistics(
        clients,
        goals,
        scores,
        outcome_rater=settings.outcome_rater,
        centred=_centred(settings),
    )


def study_statistics(
    parts: Sequence[tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | ScoreTable | None]],
    settings: MeasureSettings,
) -> MeasureStatistics:
    """The study's statistics from its partitions' (clients, goals, scores)."""
    return combine_statistics(
        [partition_statistics(clients, goals, scores, settings) for clients, goals, scores in parts]
    )


def build_partition(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    registry: Any,
    settings: MeasureSettings,
    study: MeasureStatistics,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pass 2 on a partition of the study's clients: its client measures and session panel,
    with the study's scalars `study` (`combine_statistics` of every partition's)."""
    scores = ScoreTable.of(scores, client_index(clients))
    client_measures, _ = _client_measures(
        clients, sessions, goals, scores, registry, settings, study
    )
    return client_measures, _panel(clients, sessions, scores, settings, study)


def gather_client_measures(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' client measures as one table sorted by client_id (the one-job order).

    The parts are emptied as they are gathered, a column at a time (`gather_columns`)."""
    if len(parts) == 1:
        return parts[0]
    _same_columns(parts, "client measures")
    ids = np.concatenate([part["client_id"].to_numpy(dtype=object) for part in parts])
    return gather_columns(parts, np.argsort(ids, kind="stable"))


def gather_panel(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' session panels as one, sorted by client_id, then session_number (the
    one-job order). The parts are emptied as they are gathered, a column at a time."""
    if len(parts) == 1:
        return parts[0]
    _same_columns(parts, "session panel")
    ids = pd.concat([part["client_id"] for part in parts], ignore_index=True)
    codes, labels = pd.factorize(ids, sort=False)
    del ids
    rank = np.empty(len(labels), dtype=np.int64)
    rank[np.argsort(np.asarray(labels, dtype=object), kind="stable")] = np.arange(len(labels))
    session = np.concatenate([part["session_number"].to_numpy(dtype=np.int64) for part in parts])
    low = int(session.min(initial=0))
    top = int(session.max(initial=0)) - low + 1
    keys = rank[codes] * top + (session - low)
    return gather_columns(parts, np.argsort(keys, kind="stable"))


def _same_columns(parts: Sequence[pd.DataFrame], name: str) -> None:
    first = parts[0].dtypes
    for part in parts[1:]:
        if list(part.columns) != list(first.index) or not part.dtypes.equals(first):
            raise AssertionError(f"{name}: partitions differ in columns or dtypes")


def study_thresholds(
    registry: Any, settings: MeasureSettings, study: MeasureStatistics
) -> pd.DataFrame:
    """The change thresholds of the study's outcome instruments, from its statistics alone."""
    none = pd.Index([], name="client_id", dtype=object)
    _, thresholds, _ = _outcomes(None, none, registry, settings, np.zeros(0), study)
    return thresholds


def measures_metadata(
    settings: MeasureSettings,
    thresholds: pd.DataFrame,
    study: MeasureStatistics,
    n_panel_rows: int,
) -> dict[str, Any]:
    """The choices, counts, change thresholds and grand means recorded next to the outputs."""
    metadata = {
        "settings": settings.to_metadata(),
        "dropout_definition": settings.dropout_definition,
        "outcome_instruments": list(thresholds["instrument"]),
        "n_clients": study.n_clients,
        "n_panel_rows": n_panel_rows,
        "change_thresholds": {
            row["instrument"]: {k: v for k, v in row.items() if k != "instrument"}
            for row in thresholds.to_dict("records")
        },
        "grand_means": study.grand_means(),
    }
    return _json_ready(metadata)


def gather_measures(
    parts: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    registry: Any,
    settings: MeasureSettings,
    study: MeasureStatistics,
) -> MeasuresResult:
    """The study's outputs from its partitions' `build_partition` results."""
    client_measures = gather_client_measures([part[0] for part in parts])
    panel = gather_panel([part[1] for part in parts])
    thresholds = study_thresholds(registry, settings, study)
    metadata = measures_metadata(settings, thresholds, study, len(panel))
    return MeasuresResult(client_measures, panel, thresholds, metadata)


def build_measures(
    clients: pd.DataFrame,
    sessions: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | None,
    registry: Any,
    settings: MeasureSettings | None = None,
) -> MeasuresResult:
    """Client measures, session panel, change thresholds and the metadata recording the choices.

    The whole study as its one partition: statistics (pass 1), the study's scalars, the build
    with them (pass 2) and the gather, the functions a study in partitions runs per partition.
    """
    settings = settings or MeasureSettings()
    scores = ScoreTable.of(scores, client_index(clients))
    study = study_statistics([(clients, goals, scores)], settings)
    part = build_partition(clients, sessions, goals, scores, registry, settings, study)
    return gather_measures([part], registry, settings, study)

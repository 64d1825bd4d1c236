"""Predictions of a fitted growth model, with and without its random effects.

Two predictions per session, as lme4 gives them for a ``lmer`` fit:

* ``fitted_population``: the fixed effects only, X b (lme4's ``predict(fit, re.form = NA)``,
  statsmodels' ``MixedLMResults.predict``);
* ``fitted_conditional``: plus the conditional modes (BLUPs) of the client's intercept and
  slope and of the therapist's intercept, X b + u0_i + u1_i t + v_j (lme4's ``predict(fit)``,
  statsmodels' ``fittedvalues``).

For the sessions the model was fitted to (`panel` None) the client and therapist are those
of the fit, including the stand-in therapist of a client with no known therapist. For new
data each random effect is taken by its own id, as lme4 does with ``allow.new.levels =
TRUE``: a client the model has not seen gets no client effect (their population-level
trajectory), and a row's therapist effect is added when that therapist was in the fit (a new
client of a known therapist), else 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy

from accord.core.errors import AccordError, ConfigError
from accord.models.growth import _UNKNOWN_THERAPIST, GrowthModel, _per_client

PREDICTION_COLUMNS = [
    "client_id",
    "therapist_id",
    "session",
    "time",
    "fitted_population",
    "fitted_conditional",
]


def predict_growth(
    model: GrowthModel,
    panel: pd.DataFrame | None = None,
    client_measures: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Population-level and conditional predictions of `model` per session (module docstring).

    Without `panel`: the sessions the model was fitted to, in the fit's order. With `panel`
    (client_id, the model's time column, optionally therapist_id; the exposure and
    covariates there or in `client_measures`): one row per panel row with every predictor
    known. ``fitted_conditional`` is missing when the model carries no conditional modes (a
    fit by the statsmodels engine). Raises ConfigError for a missing column."""
    if panel is None:
        frame = model.data
        session = frame["session"].to_numpy(dtype=float)
        therapist = frame["therapist"].to_numpy(dtype=object)
        stand_in = pd.Series(therapist).str.startswith(_UNKNOWN_THERAPIST)
        shown_therapist = pd.Series(therapist).where(~stand_in, None)
    else:
        frame, session = _new_frame(model, panel, client_measures)
        therapist = frame["therapist"].to_numpy(dtype=object)
        shown_therapist = pd.Series(therapist)
    X = _design(model, frame)
    population = X @ model.fe_params.to_numpy(dtype=float)
    time = frame["time"].to_numpy(dtype=float)
    if model.client_effects is None or model.therapist_effects is None:
        conditional = np.full(len(frame), np.nan)
    else:
        client = model.client_effects.reindex(frame["client"].to_numpy()).fillna(0.0)
        therapist_effect = model.therapist_effects.reindex(therapist).fillna(0.0)
        conditional = (
            population
            + client["intercept"].to_numpy()
            + client["slope"].to_numpy() * time
            + therapist_effect.to_numpy()
        )
    return pd.DataFrame(
        {
            "client_id": frame["client"].to_numpy(),
            "therapist_id": shown_therapist.to_numpy(dtype=object),
            "session": session,
            "time": time,
            "fitted_population": population,
            "fitted_conditional": conditional,
        },
        columns=PREDICTION_COLUMNS,
    )


def _new_frame(
    model: GrowthModel, panel: pd.DataFrame, client_measures: pd.DataFrame | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's predictors for new rows, coded as in the fit."""
    for column in ("client_id", model.time):
        if column not in panel.columns:
            raise ConfigError(f"growth predictions: the panel has no column {column!r}")
    measures = client_measures if client_measures is not None else panel[["client_id"]]
    frame = pd.DataFrame({"client": panel["client_id"].astype(str).to_numpy()})
    session = pd.to_numeric(panel[model.time], errors="raise").to_numpy(dtype=float)
    frame["time"] = np.log1p(session) if model.time_coding == "log" else session
    if "therapist_id" in panel.columns:
        therapist = panel["therapist_id"].where(panel["therapist_id"].notna(), None)
        frame["therapist"] = therapist.map(lambda v: None if v is None else str(v)).to_numpy()
    else:
        frame["therapist"] = None
    for name in [model.exposure, *model.covariates]:
        values, _ = _per_client(panel, measures, name, required=True)
        frame[name] = values.reindex(frame["client"]).to_numpy()
    if model.exposure_levels is not None:
        reference, other = model.exposure_levels
        text = frame[model.exposure]
        known = text.isna() | text.astype(str).isin([reference, other])
        if not known.all():
            raise ConfigError(
                f"growth predictions: the exposure {model.exposure!r} has a level the model "
                f"was not fitted with (levels {reference!r} and {other!r})"
            )
        frame[model.exposure] = np.where(
            text.isna(), np.nan, (text.astype(str) == other).astype(float)
        )
    complete = frame[[model.exposure, *model.covariates]].notna().all(axis=1).to_numpy()
    return frame.loc[complete].reset_index(drop=True), session[complete]


def _design(model: GrowthModel, frame: pd.DataFrame) -> np.ndarray:
    """The fixed-effects design of `frame`, columns in the order of the fixed effects."""
    spec = model.model_spec
    try:
        if isinstance(spec, patsy.DesignInfo):
            matrix = patsy.build_design_matrices([spec], frame, return_type="dataframe")[0]
        else:
            matrix = spec.get_model_matrix(frame)
    except Exception as exc:  # the formula engine's own errors, e.g. an unseen category
        raise AccordError(f"growth predictions: cannot build the design ({exc})") from exc
    matrix = pd.DataFrame(matrix)
    names = list(model.fe_params.index)
    if list(matrix.columns) != names:
        raise AccordError("growth predictions: the design does not match the fixed effects")
    return matrix.to_numpy(dtype=float)

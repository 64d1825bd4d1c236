"""The therapist model on post scores adjusted for intake: equal to lme4, recovering a planted
ICC, a cluster-bootstrap CI, and the null model kept only as a labelled descriptive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.models.spec import ModelContext, ModelSpec, model_specs
from accord.models.therapist import fit_therapist_spec
from accord.models.therapist_post import (
    TherapistSums,
    fit_reml,
    fit_therapist_post,
    post_icc_replicates,
    therapist_effects,
)

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "therapist_post"


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, dict[tuple[str, str], float]]:
    data = pd.read_csv(REFERENCE / "post.csv")
    fits = pd.read_csv(REFERENCE / "fits.csv", comment="#")
    return data, {(r.model, r.name): r.value for r in fits.itertuples()}


def test_intercept_model_equals_lme4(reference):
    data, r = reference
    result = fit_therapist_post(data, n_boot=0)
    rows = result.coefficients.set_index("term")
    extras = result.diagnostics["random_effects"]
    assert rows.loc["Intercept", "estimate"] == pytest.approx(
        r[("intercept", "estimate:(Intercept)")], rel=1e-6
    )
    assert rows.loc["intake_centred", "std_error"] == pytest.approx(
        r[("intercept", "std_error:intake_centred")], rel=1e-5
    )
    assert extras["therapist_intercept"] == pytest.approx(
        r[("intercept", "vcov:therapist_id:(Intercept)")], rel=1e-5
    )
    assert extras["residual"] == pytest.approx(r[("intercept", "vcov:Residual")], rel=1e-6)
    assert rows.loc["icc_therapist", "estimate"] == pytest.approx(
        r[("intercept", "icc_therapist")], rel=1e-5
    )
    deviance = -2 * result.diagnostics["log_likelihood"]
    assert deviance <= r[("intercept", "reml_deviance")] + 1e-6


def test_slopes_model_optimum_at_least_as_good_as_lme4(reference):
    data, r = reference
    slopes = fit_therapist_post(data, n_boot=0).diagnostics["extras"]["slopes_model"]
    assert -2 * slopes["log_likelihood"] <= r[("slopes", "reml_deviance")] + 1e-6
    assert slopes["var_therapist_intercept"] == pytest.approx(
        r[("slopes", "vcov:therapist_id:(Intercept)")], rel=1e-3
    )
    assert slopes["var_therapist_slope"] == pytest.approx(
        r[("slopes", "vcov:therapist_id:intake_centred")], rel=1e-2, abs=1e-5
    )


def planted(n_therapists: int, seed: int, tau: float = 1.0, sigma: float = 3.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per = 15
    therapist = np.repeat(np.arange(n_therapists), per)
    intake = rng.normal(16, 4, len(therapist))
    post = 10 + 0.6 * (intake - 16) + rng.normal(0, tau, n_therapists)[therapist]
    post = post + rng.normal(0, sigma, len(therapist))
    return pd.DataFrame(
        {"therapist_id": [f"T{t}" for t in therapist], "phq9_first": intake, "phq9_post": post}
    )


def test_planted_icc_is_recovered_with_a_covering_bootstrap_interval():
    # tau^2 = 1, sigma^2 = 9: ICC of post adjusted for intake = 0.1
    data = planted(120, seed=7)
    result = fit_therapist_post(data, n_boot=100, seed=3)
    icc = result.coefficients.set_index("term").loc["icc_therapist"]
    assert icc["estimate"] == pytest.approx(0.1, abs=0.04)
    assert icc["ci_low"] < 0.1 < icc["ci_high"]
    slope = result.coefficients.set_index("term").loc["intake_centred", "estimate"]
    assert slope == pytest.approx(0.6, abs=0.05)


def test_replicates_do_not_depend_on_how_they_are_split():
    data = planted(20, seed=2)
    whole = post_icc_replicates(data, "phq9", (), 5, 6, model_id="therapist")
    split = pd.concat(
        [
            post_icc_replicates(data, "phq9", (), 5, range(0, 3), model_id="therapist"),
            post_icc_replicates(data, "phq9", (), 5, range(3, 6), model_id="therapist"),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, split)
    pooled = fit_therapist_post(data, n_boot=6, seed=5, replicates=whole)
    drawn = fit_therapist_post(data, n_boot=6, seed=5)
    pd.testing.assert_frame_equal(pooled.coefficients, drawn.coefficients)


def test_boundary_fit_when_therapists_do_not_differ():
    data = planted(30, seed=4, tau=0.0)
    fit = fit_reml(
        TherapistSums.of(
            data["phq9_post"].to_numpy(),
            np.column_stack([np.ones(len(data)), data["phq9_first"] - 16]),
            np.ones((len(data), 1)),
            pd.factorize(data["therapist_id"])[0],
        )
    )
    # the REML optimum may be at zero; the deviance there is no worse than just above it
    assert fit["covariance"][0, 0] >= 0


def test_default_plan_fits_the_post_design_and_keeps_the_null_model_descriptive():
    specs = {spec.id: spec for spec in model_specs({})}
    assert specs["therapist"].options.get("design", "post") == "post"
    assert specs["therapist"].model_role == "descriptive"
    assert specs["therapist_null"].options["design"] == "null"
    data = planted(12, seed=9)
    spec = ModelSpec("therapist", "therapist", "phq9", "none", options={"n_boot": 0})
    result = fit_therapist_spec(pd.DataFrame(), data, spec, ModelContext())
    assert result.outcome == "phq9_post"
    assert "adjusted for intake" in result.diagnostics["extras"]["design"]


def test_therapist_effects_are_the_conditional_modes_by_hand():
    # Two therapists, residuals (1, 3) and (-2); tau2 = 1, sigma2 = 4:
    # v_1 = 1 x 4 / (4 + 2) = 2/3, SE sqrt(1 / (1 + 2/4)); v_2 = -2 / (4 + 1) = -0.4, SE
    # sqrt(1 / (1 + 1/4)).
    effects = pd.DataFrame(
        therapist_effects(np.array([1.0, 3.0, -2.0]), np.array([0, 0, 1]), 1.0, 4.0)
    )
    assert effects["effect"].tolist() == pytest.approx([-0.4, 2 / 3])
    assert effects["std_error"].tolist() == pytest.approx([np.sqrt(0.8), np.sqrt(1 / 1.5)])
    assert effects["n_clients"].tolist() == [1, 2]

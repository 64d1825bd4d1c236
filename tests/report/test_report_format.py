"""The report's number formatter, labels, Summary readings and forest plots, checked against
values worked out by hand from the APA rules (Publication Manual, 7th ed., 6.36-6.46)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from accord.config import validate_config
from accord.core.errors import ConfigError
from accord.report.context import Inputs, ReportContext
from accord.report.export import write_figures
from accord.report.figures import FOREST_SCALES, forest_figure, forest_scale, to_plot
from accord.report.labels import in_words, label, term_label, using_labels
from accord.report.numbers import (
    chi_square,
    coef,
    count,
    estimate_ci,
    estimate_digits,
    num,
    p_phrase,
    p_value,
    ratio_imprecise,
)
from accord.report.sections import models, summary

M = "\u2212"  # the minus sign the report prints


# -- numbers ---------------------------------------------------------------------------------


def test_estimates_have_two_decimals_and_three_when_the_se_is_below_one_hundredth():
    assert estimate_digits(0.11) == 2 and estimate_digits(0.01) == 2
    assert estimate_digits(0.004) == 3 and estimate_digits(None) == 2
    # -0.577 rounds to -0.58; its CI limits keep the same decimals.
    assert estimate_ci(-0.577, -0.803, -0.351) == f"{M}0.58 [{M}0.80, {M}0.35]"
    assert num(-0.0004, 2) == "0.00"  # never a negative zero
    assert num(float("nan"), 2) == "\u2013"


def test_p_values_have_no_leading_zero_and_bounds():
    assert p_value(0.0123) == ".012"
    assert p_value(0.0004) == "< .001"
    assert p_value(0.001) == ".001"
    assert p_value(0.9996) == "> .999"
    assert p_phrase(0.0123) == "= .012" and p_phrase(0.0004) == "< .001"


def test_bounded_coefficients_chi_square_and_counts():
    assert coef(0.684) == ".68" and coef(-0.031) == f"{M}.03"
    # The LRT row the issue quotes: 17.58 on 2 degrees of freedom.
    assert chi_square(17.5804, 2) == "\u03c7\u00b2(2) = 17.58"
    assert chi_square(10.818, 1.0) == "\u03c7\u00b2(1) = 10.82"
    assert count(1248) == "1,248"


def test_a_ratio_is_imprecise_when_its_ci_spans_more_than_a_factor_of_ten():
    # The dropout odds ratio the issue quotes: 654.7 / 1.6 = 409.
    assert ratio_imprecise(1.6, 654.7)
    assert not ratio_imprecise(0.30, 2.63)  # 2.63 / 0.30 = 8.8
    assert ratio_imprecise(0.5, 5.01)  # 10.02
    assert ratio_imprecise(0.0, 5.0) and ratio_imprecise(math.nan, 3.0)  # separation


# -- labels ----------------------------------------------------------------------------------


def test_built_in_labels_name_measures_terms_and_models():
    assert label("joint_goal_share") == "Joint goal-setting share"
    assert label("phq9_recovery") == "PHQ-9 recovery"
    assert label("phq9_post") == "PHQ-9 at end of treatment"
    assert label("acme") == "Indirect association (ACME)"
    assert label("ade") == "Direct association (ADE)"
    assert label("growth_gad7") == "Growth GAD-7"
    assert term_label("time:joint_goal_share") == "Time \u00d7 Joint goal-setting share"
    assert term_label("set_by[joint]") == "Set by: joint"
    assert term_label("LRT: time:joint_goal_share") == (
        "LRT, dropping Time \u00d7 Joint goal-setting share"
    )
    assert in_words("phq9_post ~ joint_goal_share + phq9_first") == (
        "PHQ-9 at end of treatment ~ Joint goal-setting share + PHQ-9 at intake"
    )


def test_config_labels_override_and_name_custom_instruments():
    config = {
        "labels": {"joint_goal_share": "Goals set jointly", "phq9": "PHQ9", "growth": "Model 1"},
        "instruments": {"hads_d": {}},
    }
    with using_labels(config):
        assert label("joint_goal_share") == "Goals set jointly"
        assert label("phq9_post") == "PHQ9 at end of treatment"  # the instrument's label
        assert label("growth") == "Model 1"
        assert label("hads_d_change") == "HADS-D change"
        assert term_label("time:joint_goal_share") == "Time \u00d7 Goals set jointly"
    assert label("joint_goal_share") == "Joint goal-setting share"  # only inside the block


def test_the_config_schema_takes_labels_as_text():
    study = {"studies": {"s": {"path": "data/s"}}}
    assert validate_config({**study, "labels": {"acme": "Indirect"}})["labels"] == {
        "acme": "Indirect"
    }
    with pytest.raises(ConfigError, match=r"labels\.acme"):
        validate_config({**study, "labels": {"acme": 3}})


# -- Summary and model tables ----------------------------------------------------------------


def _row(model: str, term: str, est: float, se: float, **more) -> dict:
    return {
        "model": model,
        "outcome": "phq9",
        "exposure": "joint_goal_share",
        "term": term,
        "estimate": est,
        "std_error": se,
        "ci_low": est - 1.96 * se,
        "ci_high": est + 1.96 * se,
        "p_value": 0.0004,
        "n_obs": 1248,
        "n_clients": 150,
        "converged": True,
        "primary": False,
        "ratio": math.nan,
        "ratio_ci_low": math.nan,
        "ratio_ci_high": math.nan,
        "exposure_effect": False,
        "role": "secondary",
        **more,
    }


def _context(tmp_path, rows: list[dict], diagnostics: dict) -> ReportContext:
    return ReportContext(
        study="s",
        config={"analysis": {"primary_outcome": "phq9"}},
        min_cell=11,
        run_date="2026-01-01",
        inputs=Inputs(tmp_path),
        coefficients=pd.DataFrame(rows),
        diagnostics=diagnostics,
    )


def test_summary_and_model_table_show_the_same_decimals_and_one_primary_row(tmp_path):
    rows = [
        _row("growth", "time", -0.30, 0.04),
        _row("growth", "time:joint_goal_share", -0.5771, 0.115, primary=True, role="primary"),
        # a sensitivity analysis of the same outcome and exposure is flagged primary too
        _row("completers", "time:joint_goal_share", -0.61, 0.13, primary=True, role="sensitivity"),
    ]
    ctx = _context(tmp_path, rows, {"growth": {"kind": "growth"}, "completers": {}})
    text, shown = summary._outcome(ctx, summary.primary_row(ctx))
    assert f"b = {M}0.58, 95% CI [{M}0.80, {M}0.35], p < .001" in text
    assert "150 clients, 1248 assessments" in text
    assert "is associated with faster improvement in PHQ-9" in text
    assert shown.rows[0][3:5] == (f"{M}0.58", f"[{M}0.80, {M}0.35]")
    growth, completers = (
        models._estimates_table(
            m, ctx.coefficients.loc[ctx.coefficients["model"] == m], {}, True, ctx
        )
        for m in ("growth", "completers")
    )
    assert growth.rows[1][:2] == ("Time \u00d7 Joint goal-setting share (primary)", f"{M}0.58")
    assert growth.highlight == frozenset({1}) and completers.highlight == frozenset()
    assert "(primary)" not in completers.rows[0][0]


def test_summary_calls_a_wide_dropout_ratio_imprecise_and_uses_observational_words(tmp_path):
    wide = _row(
        "dropout", "joint_goal_share", 3.49, 1.53, outcome="dropout", exposure_effect=True,
        ratio=32.7, ratio_ci_low=1.6, ratio_ci_high=654.7, p_value=0.023,
    )  # fmt: skip
    ctx = _context(tmp_path, [wide], {"dropout": {"method": "ML (GLM binomial)"}})
    sentence = summary._dropout_sentence(ctx, ctx.coefficients.iloc[0])
    assert "too imprecise to read" in sentence
    assert "OR = 32.70 per unit of Joint goal-setting share, 95% CI [1.60, 654.70]" in sentence
    narrow = {**wide, "ratio": 0.5, "ratio_ci_low": 0.3, "ratio_ci_high": 0.8}
    ctx = _context(tmp_path, [narrow], {"dropout": {"method": "ML (GLM binomial)"}})
    sentence = summary._dropout_sentence(ctx, ctx.coefficients.iloc[0])
    assert "In the Dropout model, it is associated with lower odds of dropout (OR = 0.50" in (
        sentence
    )
    for causal in ("reduces", "effect of", "works through", "leads to"):
        assert causal not in sentence


def test_only_a_randomised_arm_gets_causal_words(tmp_path):
    observed = _row("growth", "time:joint_goal_share", -0.5, 0.1, primary=True)
    arm = {**observed, "exposure": "arm", "term": "time:arm"}
    for row, verb in ((observed, "is associated with"), (arm, "leads to")):
        ctx = _context(tmp_path, [row], {})
        assert verb in summary._outcome_reading(ctx, ctx.coefficients.iloc[0])


def test_a_likelihood_ratio_test_reads_chi_square_with_its_df(tmp_path):
    row = _row("lrt", "LRT: time:joint_goal_share", 17.5804, math.nan, p_value=0.000152)
    part = pd.DataFrame([row])
    shown = models._test_table("lrt", part, {"extras": {"df": 2}}, True, 11)
    assert shown.columns == ("Test", "\u03c7\u00b2(df)", "p")
    assert shown.rows == (
        (
            "LRT, dropping Time \u00d7 Joint goal-setting share",
            "\u03c7\u00b2(2) = 17.58",
            "< .001",
        ),
    )


# -- forest plots ----------------------------------------------------------------------------


def test_forest_scales_keep_slopes_end_points_ratios_and_mediation_apart():
    assert forest_scale({"term": "time:joint_goal_share"}, {"kind": "growth"}) == "slope"
    assert forest_scale({"term": "joint_goal_share", "outcome": "phq9"}, {"kind": "ancova"}) == (
        "endpoint"
    )
    assert forest_scale({"term": "acme"}, {"kind": "mediation"}) == "mediation"
    assert forest_scale({"term": "joint_goal_share", "ratio": 0.8}, {"kind": "cox"}) == "ratio"
    assert forest_scale({"term": "alliance_within", "outcome": "phq9"}, {"kind": "lagged"}) == (
        "other"
    )


def test_a_ratio_forest_is_on_a_log_axis_with_legible_text_and_its_data_in_a_csv(tmp_path):
    rows = pd.DataFrame(
        {
            "label": ["Dropout (OR)", "Dropout Cox (HR)"],
            "term": ["Dropout: Joint goal-setting share"] * 2,
            "estimate": [0.88, 0.83],
            "ci_low": [0.30, 0.32],
            "ci_high": [2.63, 2.14],
            "p": [0.824, 0.699],
            "primary": [False, False],
            "scale": [FOREST_SCALES["ratio"]] * 2,
        }
    )
    fig = forest_figure(rows)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    sizes = [t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    # 8 inches wide: at a 7-inch page width, 10 points print at 8.75 points.
    assert min(sizes) >= 10 and fig.get_figwidth() == 8.0
    plot = to_plot(fig, "forest_ratio", alt="a", caption="c", data=rows)
    write_figures([plot], tmp_path)
    back = pd.read_csv(tmp_path / "forest_ratio.csv")
    assert back["estimate"].tolist() == [0.88, 0.83] and back["ci_low"].dtype == float


def test_a_ratio_whose_ci_reaches_zero_is_listed_but_not_drawn(tmp_path):
    common = {"exposure_effect": True, "outcome": "dropout", "p_fdr": 0.5}
    separated = _row(
        "dropout", "joint_goal_share", -20.5, 11673.0, ratio=1e-9, ratio_ci_low=0.0,
        ratio_ci_high=5.0, **common,
    )  # fmt: skip
    ctx = _context(tmp_path, [separated], {"dropout": {"method": "ML (GLM binomial)"}})
    blocks = models._forest(ctx)
    assert [b.kind for b in blocks] == ["table"]  # no figure: nothing left to draw
    assert blocks[0].rows[0][0] == "Dropout (OR)"

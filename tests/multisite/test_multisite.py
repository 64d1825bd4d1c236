"""Multi-site studies: two-stage pooling, the one-stage model, site inputs and the workflow."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import snakemake
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from accord.config import validate_config
from accord.core.errors import AccordError, ConfigError, StudyError
from accord.core.io import write_csv
from accord.models.spec import ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame, write_model_result
from accord.multisite.consortium import consortia
from accord.multisite.one_stage import fit_one_stage, stack_sites
from accord.multisite.pooling import pool_consortium, random_effects_pool
from accord.report.pooled import render_pooled_report
from accord.simulate import simulate_consortium, simulate_study

TERM = "time:joint_goal_share"

# Four made-up sites: estimates y and variances v = SE^2.
Y = [0.10, 0.30, -0.20, 0.50]
V = [0.01, 0.02, 0.04, 0.05]


# ----------------------------------------------------------------------------- pooling


def test_dersimonian_laird_matches_the_hand_computation() -> None:
    # Worked by hand: w = 1/v = 100, 50, 25, 20; sum w = 195; sum w y = 10 + 15 - 5 + 10 = 30.
    common = 30 / 195  # 0.153846
    q = sum(w * (y - common) ** 2 for w, y in zip([100, 50, 25, 20], Y, strict=True))
    assert q == pytest.approx(6.884615, abs=1e-6)  # 0.28994 + 1.06805 + 3.13018 + 2.39645
    c = 195 - (100**2 + 50**2 + 25**2 + 20**2) / 195  # 195 - 13525 / 195 = 125.641
    tau2 = (q - 3) / c
    assert tau2 == pytest.approx(0.0309184, abs=1e-7)
    i2 = (q - 3) / q
    assert i2 == pytest.approx(0.564246, abs=1e-6)
    w_star = [1 / (v + tau2) for v in V]  # 24.4389, 19.6393, 14.1007, 12.3581
    mean = sum(w * y for w, y in zip(w_star, Y, strict=True)) / sum(w_star)
    se = sum(w_star) ** -0.5
    assert mean == pytest.approx(0.165794, abs=1e-6)
    assert se == pytest.approx(0.119067, abs=1e-6)

    reference = combine_effects(np.array(Y), np.array(V), method_re="dl")
    assert reference.tau2 == pytest.approx(tau2, rel=1e-10)
    assert reference.mean_effect_re == pytest.approx(mean, rel=1e-10)

    pooled = random_effects_pool(Y, np.sqrt(V), method="dersimonian_laird")
    assert pooled["k_sites"] == 4
    assert pooled["q"] == pytest.approx(q, rel=1e-10)
    assert pooled["q_df"] == 3
    assert pooled["q_p_value"] == pytest.approx(stats.chi2.sf(q, 3), rel=1e-10)
    assert pooled["tau2"] == pytest.approx(tau2, rel=1e-10)
    assert pooled["tau"] == pytest.approx(math.sqrt(tau2), rel=1e-10)
    assert pooled["i2"] == pytest.approx(i2, rel=1e-10)
    assert pooled["estimate"] == pytest.approx(mean, rel=1e-10)
    assert pooled["std_error"] == pytest.approx(se, rel=1e-10)
    assert pooled["ci_low"] == pytest.approx(mean - 1.959964 * se, abs=1e-6)
    assert pooled["z"] == pytest.approx(mean / se, rel=1e-10)
    assert pooled["common_estimate"] == pytest.approx(common, rel=1e-10)
    assert pooled["common_std_error"] == pytest.approx(195**-0.5, rel=1e-10)
    expected_weights = [w / sum(w_star) for w in w_star]
    assert pooled["weights_random"] == pytest.approx(expected_weights, rel=1e-10)
    # Prediction interval (Higgins, Thompson & Spiegelhalter 2009): t on k - 2 = 2 df, 4.3027.
    half = 4.302653 * math.sqrt(tau2 + se**2)
    assert pooled["prediction_low"] == pytest.approx(mean - half, abs=1e-5)
    assert pooled["prediction_high"] == pytest.approx(mean + half, abs=1e-5)
    # Hartung-Knapp: q* = sum w*_i (y_i - mean)^2 / (k - 1), SE_HK = (q* / sum w*)^1/2, and a
    # t on k - 1 = 3 df (t_{3, .975} = 3.182446).
    q_star = sum(w * (y - mean) ** 2 for w, y in zip(w_star, Y, strict=True)) / 3
    se_hk = math.sqrt(q_star / sum(w_star))
    assert pooled["hk_std_error"] == pytest.approx(se_hk, rel=1e-10)
    assert pooled["hk_ci_low"] == pytest.approx(mean - 3.182446 * se_hk, abs=1e-6)
    assert pooled["hk_ci_high"] == pytest.approx(mean + 3.182446 * se_hk, abs=1e-6)
    assert pooled["hk_p_value"] == pytest.approx(2 * stats.t.sf(mean / se_hk, 3), rel=1e-10)


def test_paule_mandel_solves_the_generalised_q_equation() -> None:
    pooled = random_effects_pool(Y, np.sqrt(V))  # the default method
    tau2 = pooled["tau2"]
    w = [1 / (v + tau2) for v in V]
    mean = sum(a * y for a, y in zip(w, Y, strict=True)) / sum(w)
    generalised_q = sum(a * (y - mean) ** 2 for a, y in zip(w, Y, strict=True))
    assert generalised_q == pytest.approx(3.0, abs=1e-6)  # k - 1
    assert pooled["estimate"] == pytest.approx(mean, rel=1e-8)
    assert tau2 != pytest.approx(0.0309184, abs=1e-4)  # not the DerSimonian-Laird value
    # With the generalised Q equal to k - 1, the Hartung-Knapp scale q* is 1: the same SE,
    # and only the t quantile on 3 df widens the interval.
    assert pooled["hk_std_error"] == pytest.approx(pooled["std_error"], rel=1e-6)
    half = pooled["hk_ci_high"] - pooled["estimate"]
    assert half == pytest.approx(3.182446 * pooled["std_error"], rel=1e-6)


def test_homogeneous_sites_give_zero_tau2_and_the_common_effect() -> None:
    pooled = random_effects_pool([0.2, 0.21, 0.19], [0.1, 0.1, 0.1])
    assert pooled["tau2"] == 0.0
    assert pooled["i2"] == 0.0
    assert pooled["estimate"] == pytest.approx(0.2)
    assert pooled["std_error"] == pytest.approx(0.1 / math.sqrt(3))
    assert pooled["estimate"] == pytest.approx(pooled["common_estimate"])


def test_two_sites_have_no_prediction_interval_and_one_site_is_passed_through() -> None:
    two = random_effects_pool([0.1, 0.3], [0.1, 0.1])
    assert math.isnan(two["prediction_low"]) and two["k_sites"] == 2
    one = random_effects_pool([0.1], [0.05])
    assert one["estimate"] == 0.1 and one["std_error"] == pytest.approx(0.05)
    assert math.isnan(one["tau2"]) and math.isnan(one["q"])
    with pytest.raises(ValueError, match="unknown pooling method"):
        random_effects_pool([0.1], [0.05], method="reml")


# ----------------------------------------------------------------------------- site inputs


def _site_files(
    folder: Path,
    estimate: float,
    std_error: float,
    *,
    outcome: str = "phq9",
    model: str = "growth",
    n_clients: object = 150,
    converged: bool = True,
) -> Path:
    """A site's shared results folder: one growth model's coefficients and diagnostics."""
    common = {
        "model": model,
        "outcome": outcome,
        "exposure": "joint_goal_share",
        "n_obs": 1200,
        "n_clients": 150,
        "converged": converged,
    }
    rows = [
        {**common, "term": "Intercept", "estimate": 16.0, "std_error": 0.3},
        {**common, "term": "time", "estimate": -0.4, "std_error": 0.03},
        {**common, "term": "joint_goal_share", "estimate": 0.2, "std_error": 0.4},
        {**common, "term": TERM, "estimate": estimate, "std_error": std_error},
    ]
    diagnostics = {"model": model, "converged": converged, "n_therapists": 12}
    result = ModelResult(model, outcome, "joint_goal_share", coefficient_frame(rows), diagnostics)
    write_model_result(result, folder / "coefficients.csv", folder / "diagnostics.json")
    if n_clients != 150:  # as a site's disclosure control may have written it
        frame = pd.read_csv(folder / "coefficients.csv", dtype=str, keep_default_na=False)
        frame["n_clients"] = str(n_clients)
        frame.to_csv(folder / "coefficients.csv", index=False)
    return folder


def _config(tmp_path: Path, sites: dict[str, dict], **entry: object) -> dict:
    return {
        "studies": {"north": {"path": str(tmp_path / "north")}},
        "consortia": {"net": {"sites": sites, **entry}},
    }


def _shared_consortium(tmp_path: Path, **sites: Path):
    config = _config(tmp_path, {name: {"results": str(path)} for name, path in sites.items()})
    return consortia(validate_config(config))["net"]


def test_pooling_shared_results_matches_direct_pooling(tmp_path: Path) -> None:
    sites = {
        f"s{k}": _site_files(tmp_path / f"s{k}", y, math.sqrt(v))
        for k, (y, v) in enumerate(zip(Y, V, strict=True))
    }
    pooled, table, record = pool_consortium(_shared_consortium(tmp_path, **sites))
    assert list(pooled["term"]) == [TERM]  # the exposure effect, found without exposure_effect
    row = pooled.iloc[0]
    direct = random_effects_pool(Y, np.sqrt(V))
    assert row["estimate"] == pytest.approx(direct["estimate"], rel=1e-9)
    assert row["tau2"] == pytest.approx(direct["tau2"], rel=1e-9)
    assert row["k_sites"] == 4 and row["n_clients"] == 600
    assert row["method"] == "paule_mandel"
    assert table["included"].all()
    assert table["weight_random"].sum() == pytest.approx(1.0)
    assert set(record["sites"]) == {"s0", "s1", "s2", "s3"}
    assert len(record["sites"]["s0"]["sha256"]["coefficients.csv"]) == 64


def test_unconverged_and_suppressed_sites_are_listed_and_left_out(tmp_path: Path) -> None:
    sites = {
        "a": _site_files(tmp_path / "a", 0.1, 0.1),
        "b": _site_files(tmp_path / "b", 0.3, 0.1),
        "c": _site_files(tmp_path / "c", -2.0, 0.2, converged=False),
        "d": _site_files(tmp_path / "d", 9.0, 0.5, n_clients="<11"),
        "e": _site_files(tmp_path / "e", 7.0, 0.5, n_clients=8),
    }
    pooled, table, record = pool_consortium(_shared_consortium(tmp_path, **sites))
    row = pooled.iloc[0]
    assert row["k_sites"] == 2 and row["sites_excluded"] == 3
    assert row["estimate"] == pytest.approx(random_effects_pool([0.1, 0.3], [0.1, 0.1])["estimate"])
    reasons = dict(zip(table["site"], table["reason"], strict=True))
    assert reasons["c"] == "model did not converge"
    assert reasons["d"] == reasons["e"] == "number of clients suppressed or below 11"
    small = table.set_index("site").loc[["d", "e"]]
    assert small["estimate"].isna().all() and small["n_clients"].isna().all()
    assert any("site c" in note and "did not converge" in note for note in record["notes"])


def test_missing_site_file_names_the_site_and_file(tmp_path: Path) -> None:
    a = _site_files(tmp_path / "a", 0.1, 0.1)
    consortium = _shared_consortium(tmp_path, a=a, b=tmp_path / "b")
    with pytest.raises(StudyError, match=r"site 'b': .*b/coefficients\.csv does not exist"):
        pool_consortium(consortium)
    (a / "diagnostics.json").unlink()
    consortium = _shared_consortium(tmp_path, a=a, c=_site_files(tmp_path / "c", 0.1, 0.1))
    with pytest.raises(StudyError, match=r"site 'a': .*a/diagnostics\.json does not exist"):
        pool_consortium(consortium)


def test_model_missing_at_a_site_names_the_site_and_file(tmp_path: Path) -> None:
    a = _site_files(tmp_path / "a", 0.1, 0.1)
    b = _site_files(tmp_path / "b", 0.1, 0.1, model="growth_gad7")
    sites = {"a": {"results": str(a)}, "b": {"results": str(b)}}
    config = validate_config(_config(tmp_path, sites, pool=[{"model": "growth"}]))
    with pytest.raises(StudyError, match=r"site 'b': model 'growth' is not in .*b/coefficients"):
        pool_consortium(consortia(config)["net"])
    # Without `pool`, only models every site reports are pooled; here there are none.
    with pytest.raises(StudyError, match="no model exposure effect in common"):
        pool_consortium(_shared_consortium(tmp_path, a=a, b=b))


def test_mismatched_outcome_names_the_site_and_file(tmp_path: Path) -> None:
    a = _site_files(tmp_path / "a", 0.1, 0.1)
    b = _site_files(tmp_path / "b", 0.1, 0.1, outcome="gad7")
    with pytest.raises(StudyError, match=r"site 'b': model 'growth' in .*b/coefficients\.csv is "):
        pool_consortium(_shared_consortium(tmp_path, a=a, b=b))


@pytest.mark.parametrize(
    ("sites", "entry", "message"),
    [
        ({"a": {"study": "nowhere"}, "b": {"study": "north"}}, {}, r"sites\.a\.study'.*no such"),
        ({"a": {"study": "north", "results": "x"}, "b": {"study": "north"}}, {}, "either"),
        ({"a": {"study": "north"}, "b": {"results": "x"}}, {"one_stage": True}, "at least 2"),
        ({"a": {"study": "north"}}, {}, r"'consortia\.net\.sites': a consortium needs at least 2"),
    ],
)
def test_bad_consortium_config_names_the_key(
    tmp_path: Path, sites: dict, entry: dict, message: str
) -> None:
    config = validate_config(_config(tmp_path, sites, **entry))
    with pytest.raises(ConfigError, match=message):
        consortia(config)


def test_schema_fills_method_and_rejects_unknown_settings(tmp_path: Path) -> None:
    config = validate_config(_config(tmp_path, {"a": {"study": "north"}, "b": {"results": "x"}}))
    assert config["consortia"]["net"]["method"] == "paule_mandel"
    assert config["consortia"]["net"]["one_stage"] is False
    with pytest.raises(ConfigError, match=r"consortia\.net\.weights"):
        validate_config(_config(tmp_path, {"a": {"study": "north"}}, weights="equal"))


# ----------------------------------------------------------------------------- one-stage


def test_stacked_sites_keep_repeated_pseudonyms_apart() -> None:
    panel = pd.DataFrame(
        {"client_id": ["C1", "C1"], "session_number": [0, 1], "therapist_id": ["T1", None]}
    )
    clients = pd.DataFrame({"client_id": ["C1"], "therapist_id": ["T1"], "x": [0.5]})
    stacked_panel, stacked_clients = stack_sites(
        {"south": (panel, clients), "north": (panel, clients)}
    )
    assert list(stacked_clients["client_id"]) == ["north/C1", "south/C1"]
    assert list(stacked_clients["site"]) == ["north", "south"]
    assert list(stacked_panel["therapist_id"].iloc[:2]) == ["north/T1", None]
    assert list(panel["client_id"]) == ["C1", "C1"]  # the inputs are left as they were


def test_one_stage_refits_growth_models_only() -> None:
    spec = ModelSpec("dropout", "logistic", "dropout", "joint_goal_share")
    with pytest.raises(AccordError, match="model 'dropout' is of kind 'logistic'"):
        fit_one_stage({"a": (pd.DataFrame(), pd.DataFrame())}, spec, consortium="net")


# ----------------------------------------------------------------------------- report


def test_forest_plot_and_report_are_deterministic_and_show_no_small_site(tmp_path: Path) -> None:
    sites = {
        "a": _site_files(tmp_path / "a", 0.1, 0.1),
        "b": _site_files(tmp_path / "b", 0.3, 0.12),
        "c": _site_files(tmp_path / "c", 0.2, 0.15),
        "d": _site_files(tmp_path / "d", 9.123, 0.5, n_clients=8),
    }
    pooled, table, record = pool_consortium(_shared_consortium(tmp_path, **sites))
    outputs = []
    for name in ("one", "two"):
        render_pooled_report(
            tmp_path / f"{name}.html",
            name="net",
            pooled=pooled,
            sites=table,
            notes=record["notes"],
            record=record,
            forest_svg_path=tmp_path / f"{name}.svg",
            forest_png_path=tmp_path / f"{name}.png",
        )
        outputs.append(
            [(tmp_path / f"{name}.{ext}").read_bytes() for ext in ("html", "svg", "png")]
        )
    assert outputs[0] == outputs[1]
    page, svg, png = outputs[0]
    assert svg.lstrip().startswith(b"<?xml") and png.startswith(b"\x89PNG")
    html = page.decode()
    assert "Pooled analysis: net" in html and "excluded: number of clients" in html
    assert "9.123" not in html and "data:image/svg+xml;base64," in html
    assert record["sites"]["a"]["sha256"]["coefficients.csv"] in html  # provenance


# ----------------------------------------------------------------------------- simulation


def test_simulated_consortium_records_its_truth() -> None:
    first = simulate_consortium(n_sites=3, n_clients=30, n_therapists=3, seed=4)
    again = simulate_consortium(n_sites=3, n_clients=30, n_therapists=3, seed=4)
    assert list(first.sites) == ["site_1", "site_2", "site_3"]
    assert first.truth == again.truth
    for name, study in first.sites.items():
        effect = first.truth["site_effects"][name]
        assert study.truth["growth"]["time_x_exposure"] == effect
        assert len(study.clients) == 30 and study.clients["site_id"].nunique() == 1
        pd.testing.assert_frame_equal(study.measures, again.sites[name].measures)
    exact = simulate_consortium(n_sites=2, n_clients=20, n_therapists=2, between_site_sd=0.0)
    assert set(exact.truth["site_effects"].values()) == {-0.25}
    with pytest.raises(ConfigError, match="mean_effect"):
        simulate_consortium(growth_time_x_exposure=-0.3)


def _simulated_network(**settings: object) -> dict:
    return {"consortia": {"net": {"simulate": {"path": "data/net", **settings}}}}


def test_a_simulated_consortium_in_the_config_becomes_one_study_per_site() -> None:
    design = {"n_sites": 3, "n_clients": 30, "n_therapists": 3, "seed": 4}
    config = validate_config(_simulated_network(**design, effects={"dropout_rate": 0.2}))
    assert config["consortia"]["net"]["sites"] == {
        f"site_{k}": {"study": f"net_site_{k}"} for k in (1, 2, 3)
    }
    assert sorted(config["studies"]) == ["net_site_1", "net_site_2", "net_site_3"]
    assert config["studies"]["net_site_2"]["path"] == "data/net/site_2"
    assert config["studies"]["net_site_2"]["missing_codes"] == []  # defaults filled in
    assert validate_config(config) == config  # validating again changes nothing
    # Each site's study is the one simulate_consortium draws, byte for byte.
    drawn = simulate_consortium(**design, dropout_rate=0.2)
    for k in (1, 2, 3):
        settings = dict(config["studies"][f"net_site_{k}"]["simulate"])
        effects = settings.pop("effects")
        assert effects["dropout_rate"] == 0.2
        study = simulate_study(**settings, **effects)
        expected = drawn.sites[f"site_{k}"]
        assert study.truth == expected.truth
        pd.testing.assert_frame_equal(study.measures, expected.measures)
        pd.testing.assert_frame_equal(study.clients, expected.clients)
    # Sites given beside the simulated ones are kept; the consortium needs no other study.
    config = _simulated_network(n_sites=2)
    config["consortia"]["net"]["sites"] = {"east": {"results": "shared/east"}}
    found = consortia(validate_config(config))["net"]
    assert [(site.name, site.source) for site in found.sites] == [
        ("east", "results"),
        ("site_1", "study"),
        ("site_2", "study"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["consortia"]["net"]["simulate"].update(effects={"luck": 1.0}),
            r"'consortia\.net\.simulate\.effects\.luck': not an effect of the simulator",
        ),
        (
            lambda c: c["consortia"]["net"]["simulate"].update(
                effects={"growth_time_x_exposure": -0.3}
            ),
            r"'consortia\.net\.simulate': .*give the sites' effect as mean_effect",
        ),
        (
            lambda c: c["consortia"]["net"]["simulate"].update(n_sites=1),
            r"'consortia\.net\.simulate\.n_sites': breaks the rule 'minimum: 2'",
        ),
        (
            lambda c: c.update(studies={"net_site_1": {"path": "elsewhere"}}),
            r"'studies\.net_site_1': the name of a simulated site of consortium 'net'",
        ),
        (
            lambda c: c["consortia"]["net"].update(sites={"site_2": {"results": "x"}}),
            r"'consortia\.net\.sites\.site_2': the name of one of the consortium's simulated",
        ),
        (
            lambda c: c.update(studies={"s": {"path": "x", "simulate": {"effects": {"x": 1}}}}),
            r"'studies\.s\.simulate\.effects\.x': not an effect of the simulator",
        ),
    ],
)
def test_a_bad_simulated_consortium_names_the_key(change, message: str) -> None:
    config = _simulated_network(n_sites=2)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


# ----------------------------------------------------------------------------- workflow

MEAN_EFFECT = -0.25


@pytest.fixture(scope="module")
def consortium_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow on a simulated consortium: two sites the workflow draws itself (the
    config's ``simulate``) and a third that shares only its results.

    Site 3 stands for a site that ran accord itself: it is drawn with the same mean effect, its
    growth model is fitted here and only its coefficients.csv and diagnostics.json are handed
    to the workflow.
    """
    from accord.core.instruments import load_registry
    from accord.measures.build import build_measures
    from accord.measures.scoring import score_measures
    from accord.models.growth import fit_growth

    workdir = tmp_path_factory.mktemp("consortium")
    design = {"n_clients": 150, "n_therapists": 6, "seed": 3, "mean_effect": MEAN_EFFECT}
    shared = simulate_consortium(n_sites=3, **design).sites["site_3"]
    registry = load_registry()
    scores, _ = score_measures(shared.measures, registry)
    built = build_measures(shared.clients, shared.sessions, shared.goals, scores, registry)
    result = fit_growth(built.session_panel, built.client_measures, therapist_effect=False)
    folder = workdir / "shared" / "site_3"
    write_model_result(result, folder / "coefficients.csv", folder / "diagnostics.json")
    config = {
        "models": [{"id": "growth", "kind": "growth", "primary": True, "therapist_effect": False}],
        "consortia": {
            "network": {
                "simulate": {"path": "data/network", "n_sites": 2, **design},
                "sites": {"site_3": {"results": "shared/site_3"}},
                "one_stage": True,
            }
        },
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(
        workdir, "reports/consortia/network/pooled.html", "--configfile", "config.yaml"
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


@pytest.mark.e2e
def test_consortium_runs_both_ways_and_writes_the_pooled_report(consortium_run: Path) -> None:
    results = consortium_run / "results" / "consortia" / "network"
    for name in ("pooled.csv", "sites.csv", "one_stage.csv", "pooling.json", "one_stage.json"):
        assert (results / name).exists(), name
    reports = consortium_run / "reports" / "consortia" / "network"
    for name in ("pooled.html", "forest.svg", "forest.png"):
        assert (reports / name).exists(), name
    html = (reports / "pooled.html").read_text()
    assert "Pooled analysis: network" in html and "One-stage" in html
    words = " ".join(html.split())
    assert 'id="simulated-truth"' in html and "around a mean of \u22120.250 with" in words
    for k in (1, 2):  # the workflow drew the simulated sites
        truth = json.loads((consortium_run / f"data/network/site_{k}/truth.json").read_text())
        assert truth["n_clients"] == 150
    sites = pd.read_csv(results / "sites.csv")
    assert list(sites["source"]) == ["study", "study", "results"]
    assert sites["included"].all()
    one_stage = pd.read_csv(results / "one_stage.csv")
    assert {"site[T.site_2]", "time:site[T.site_2]", TERM} <= set(one_stage["term"])
    assert one_stage["n_sites"].eq(2).all() and one_stage["converged"].all()


@pytest.mark.e2e
def test_two_stage_and_one_stage_agree_and_recover_the_truth(consortium_run: Path) -> None:
    results = consortium_run / "results" / "consortia" / "network"
    pooled = pd.read_csv(results / "pooled.csv").set_index("term").loc[TERM]
    one_stage = pd.read_csv(results / "one_stage.csv").set_index("term").loc[TERM]
    assert pooled["k_sites"] == 3
    # Recovery: the true mean effect over sites lies in the pooled 95% CI.
    assert pooled["ci_low"] <= MEAN_EFFECT <= pooled["ci_high"]
    # The one-stage model pools sites 1 and 2 only: it targets their own effects' mean.
    local_truth = np.mean(
        [
            json.loads((consortium_run / f"data/network/{site}/truth.json").read_text())["growth"][
                "time_x_exposure"
            ]
            for site in ("site_1", "site_2")
        ]
    )
    assert one_stage["ci_low"] <= local_truth <= one_stage["ci_high"]
    # Agreement. The one-stage model (sites 1 and 2: the one that shared results has no rows
    # here) has a common effect, so it is compared with the common-effect two-stage estimate
    # of the same two sites, within one SE of that estimate, and with the random-effects
    # estimate of all three sites, within one pooled SE.
    sites = pd.read_csv(results / "sites.csv").set_index("site")
    local = random_effects_pool(
        sites.loc[["site_1", "site_2"], "estimate"], sites.loc[["site_1", "site_2"], "std_error"]
    )
    assert abs(one_stage["estimate"] - local["common_estimate"]) < local["common_std_error"]
    assert abs(one_stage["estimate"] - pooled["estimate"]) < pooled["std_error"]


@pytest.mark.e2e
def test_pooling_is_byte_identical_on_the_same_inputs(
    consortium_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(consortium_run / "results", tmp_path / "results")
    shutil.copytree(consortium_run / "shared", tmp_path / "shared")
    config = yaml.safe_load((consortium_run / "config.yaml").read_text())
    consortium = consortia(validate_config(config))["network"]
    results = consortium_run / "results" / "consortia" / "network"
    monkeypatch.chdir(tmp_path)
    pooled, sites, _ = pool_consortium(consortium)
    write_csv(tmp_path / "pooled.csv", pooled)
    write_csv(tmp_path / "sites.csv", sites)
    assert (tmp_path / "pooled.csv").read_bytes() == (results / "pooled.csv").read_bytes()
    assert (tmp_path / "sites.csv").read_bytes() == (results / "sites.csv").read_bytes()


@pytest.mark.slow
def test_pooling_recovers_the_mean_effect_over_replicate_consortia() -> None:
    """Six simulated consortia of four sites: the two-stage CI covers the true mean effect in
    at least five, the estimates average to it, and one-stage and two-stage agree in each."""
    from accord.core.instruments import load_registry
    from accord.measures.build import build_measures
    from accord.measures.scoring import score_measures
    from accord.models.growth import fit_growth

    registry = load_registry()
    spec = ModelSpec("growth", "growth", "phq9", "joint_goal_share", therapist_effect=False)
    covered, estimates, standard_errors = 0, [], []
    for seed in range(1, 7):
        network = simulate_consortium(
            n_sites=4, n_clients=150, n_therapists=6, seed=seed, between_site_sd=0.05
        )
        rows, site_estimates, site_errors = {}, [], []
        for name, study in network.sites.items():
            scores, _ = score_measures(study.measures, registry)
            built = build_measures(study.clients, study.sessions, study.goals, scores, registry)
            rows[name] = (built.session_panel, built.client_measures)
            fit = fit_growth(built.session_panel, built.client_measures, therapist_effect=False)
            term = fit.coefficients.set_index("term").loc[TERM]
            site_estimates.append(term["estimate"])
            site_errors.append(term["std_error"])
        pooled = random_effects_pool(site_estimates, site_errors)
        covered += pooled["ci_low"] <= MEAN_EFFECT <= pooled["ci_high"]
        estimates.append(pooled["estimate"])
        standard_errors.append(pooled["std_error"])
        one_stage = fit_one_stage(rows, spec).coefficients.set_index("term").loc[TERM]
        assert abs(one_stage["estimate"] - pooled["estimate"]) < pooled["std_error"], seed
    assert covered >= 5
    # The mean of six estimates lies within 2 SE of the truth, SE = RMS pooled SE / sqrt(6).
    tolerance = 2 * math.sqrt(np.mean(np.square(standard_errors)) / 6)
    assert abs(np.mean(estimates) - MEAN_EFFECT) < tolerance


def test_a_local_site_is_pooled_from_its_shared_results_only(tmp_path: Path) -> None:
    # Two-stage pooling reads what a site would share (small counts withheld), never the
    # study's own models/ folder with every count the fits used.
    config = validate_config(_config(tmp_path, {"a": {"study": "north"}, "b": {"results": "x"}}))
    local = consortia(config)["net"].sites[0]
    assert local.coefficients == Path("results/north/shared/coefficients.csv")
    assert local.diagnostics == Path("results/north/shared/diagnostics.json")

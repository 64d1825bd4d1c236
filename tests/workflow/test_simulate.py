"""The synthetic study generator: contract shape, determinism, plausibility and known effects."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from accord.core.errors import ConfigError
from accord.simulate import SimulatedStudy, simulate_study, write_study

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TABLES = ("clients", "sessions", "measures", "goals")
COLUMNS = {
    "clients": [
        "client_id",
        "therapist_id",
        "site_id",
        "arm",
        "intake_year",
        "age",
        "age_band",
        "gender",
        "end_reason",
    ],
    "sessions": [
        "client_id",
        "session_number",
        "status",
        "day",
        "duration_min",
        "modality",
        "homework_assigned",
        "homework_completion",
        "goal_review",
    ],
    "measures": ["client_id", "session_number", "instrument", "rater", "item", "value", "phase"],
    "goals": [
        "client_id",
        "goal_id",
        "set_session",
        "set_by",
        "client_importance",
        "therapist_importance",
        "smart_specific",
        "smart_measurable",
        "smart_achievable",
        "smart_relevant",
        "smart_time_bound",
        "status",
        "revised_session",
    ],
}
KEYS = {
    "clients": ["client_id"],
    "sessions": ["client_id", "session_number"],
    "measures": ["client_id", "session_number", "instrument", "rater", "item"],
    "goals": ["client_id", "goal_id"],
}
ITEM_RANGE = {"phq9": (9, 0, 3), "gad7": (7, 0, 3), "wai_sr": (12, 1, 5), "srs": (4, 0, 10)}


@pytest.fixture(scope="module")
def study() -> SimulatedStudy:
    return simulate_study(n_clients=300, n_therapists=12, n_sites=3, seed=7)


@pytest.fixture(scope="module")
def big() -> SimulatedStudy:
    return simulate_study(n_clients=2000, seed=2026)


def _joint_share(goals: pd.DataFrame) -> pd.Series:
    return goals["set_by"].eq("joint").groupby(goals["client_id"]).mean()


def _phq9_totals(measures: pd.DataFrame) -> pd.DataFrame:
    """Item sums with at most 2 items missing prorated (mean of answered items x 9)."""
    phq = measures[measures["instrument"] == "phq9"]
    forms = phq.groupby(["client_id", "session_number"])["value"].agg(["mean", "count"])
    forms = forms[forms["count"] >= 7]
    return (forms["mean"] * 9).rename("phq9").reset_index()


# --------------------------------------------------------------------------- contract shape


def test_tables_have_exactly_the_contract_columns(study):
    for table in TABLES:
        assert list(getattr(study, table).columns) == COLUMNS[table], table


def test_ids_are_unique_random_pseudonyms(study):
    clients = study.clients
    assert clients["client_id"].is_unique
    for column in ("client_id", "therapist_id", "site_id"):
        values = clients[column].astype(str)
        assert values.map(lambda v: bool(ID.match(v))).all(), column
        assert not values.str.fullmatch(r"\d+").any(), column
        assert not values.str.contains(r"\d{3}").any(), column  # nothing number-like
    assert clients["therapist_id"].nunique() <= 12
    assert clients["site_id"].nunique() == 3
    # therapists are nested in sites
    assert (clients.groupby("therapist_id")["site_id"].nunique() == 1).all()


def test_categories_take_only_allowed_values(study):
    c, s, m, g = study.clients, study.sessions, study.measures, study.goals
    assert set(c["arm"]) == {"collaborative", "usual_care"}
    assert set(c["end_reason"]) <= {"completed", "dropout", "referred", "ongoing", "other"}
    assert set(c["age_band"]) <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65-89"}
    assert set(s["status"]) == {"attended", "cancelled", "no_show"}
    assert set(s["modality"]) <= {"in_person", "video", "phone", "other"}
    assert set(m["instrument"]) == {"phq9", "gad7", "wai_sr", "srs", "gas"}
    assert set(m["rater"]) == {"client", "therapist"}
    assert set(m.loc[m["rater"] == "therapist", "instrument"]) == {"wai_sr"}
    assert set(m["phase"]) == {"intake", "treatment"}
    assert ((m["phase"] == "intake") == (m["session_number"] == 0)).all()
    assert set(g["set_by"]) == {"client", "therapist", "joint"}
    assert set(g["status"]) <= {"active", "achieved", "revised", "abandoned"}


def test_numeric_columns_are_integers_or_numbers_in_range(study):
    c, s, g = study.clients, study.sessions, study.goals
    for column in ("intake_year", "age"):
        assert pd.api.types.is_integer_dtype(c[column])
    assert c["age"].between(18, 89).all()
    assert c["intake_year"].between(2019, 2024).all()
    bands = c["age_band"].str.split("-", expand=True).astype(int)
    assert c["age"].between(bands[0], bands[1]).all()

    assert pd.api.types.is_integer_dtype(s["session_number"])
    assert (s["session_number"] >= 1).all()
    assert (s["day"] >= 0).all()
    assert (s.groupby("client_id")["day"].diff().dropna() >= 0).all()
    assert (s.groupby("client_id")["day"].first() == 0).all()
    assert s["duration_min"].dropna().between(0, 600).all()
    attended = s["status"] == "attended"
    assert s.loc[attended, "duration_min"].notna().all()
    assigned = s["homework_assigned"].fillna(False).astype(bool)
    assert s.loc[assigned, "homework_completion"].between(0, 1).all()
    assert s.loc[~assigned, "homework_completion"].isna().all()

    for column in ("set_session", "client_importance", "therapist_importance"):
        assert pd.api.types.is_integer_dtype(g[column])
    assert g["set_session"].isin([0, 1]).all()
    assert g["client_importance"].between(1, 5).all()
    assert g["therapist_importance"].between(1, 5).all()
    revised = g["status"] == "revised"
    assert g.loc[revised, "revised_session"].notna().all()
    assert g.loc[~revised, "revised_session"].isna().all()
    assert (g.loc[revised, "revised_session"] >= g.loc[revised, "set_session"]).all()
    for column in COLUMNS["goals"]:
        if column.startswith("smart_"):
            assert g[column].dtype == bool


def test_item_values_and_labels_match_each_instrument(study):
    m = study.measures
    for instrument, (k, lo, hi) in ITEM_RANGE.items():
        rows = m[m["instrument"] == instrument]
        assert rows["value"].between(lo, hi).all(), instrument
        assert set(rows["item"]) == {str(j) for j in range(1, k + 1)}, instrument
        assert (rows["value"] == rows["value"].round()).all()
    gas = m[m["instrument"] == "gas"]
    assert gas["value"].between(-2, 2).all()
    # a GAS item is the goal_id of one of the client's goals, rated after it was set
    rated = gas.merge(
        study.goals, left_on=["client_id", "item"], right_on=["client_id", "goal_id"], how="left"
    )
    assert rated["goal_id"].notna().all()
    assert (rated["session_number"] > rated["set_session"]).all()


def test_keys_are_unique_and_rows_sorted_by_them(study):
    for table in TABLES:
        frame = getattr(study, table)
        keys = KEYS[table]
        assert not frame.duplicated(keys).any(), table
        expected = frame.sort_values(keys, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected, obj=table)


def test_referential_integrity(study):
    clients = set(study.clients["client_id"])
    for table in ("sessions", "measures", "goals"):
        assert set(getattr(study, table)["client_id"]) <= clients, table
    sessions = study.sessions
    m = study.measures
    known = pd.MultiIndex.from_frame(sessions[["client_id", "session_number"]])
    later = m[m["session_number"] > 0]
    used = pd.MultiIndex.from_frame(later[["client_id", "session_number"]])
    assert used.isin(known).all()
    # only attended sessions carry measures
    attended = sessions[sessions["status"] == "attended"]
    assert used.isin(pd.MultiIndex.from_frame(attended[["client_id", "session_number"]])).all()
    # every client has an intake PHQ-9, 2-4 goals and attended session 1
    assert set(m.loc[(m["session_number"] == 0) & (m["instrument"] == "phq9"), "client_id"]) == (
        clients
    )
    assert study.goals.groupby("client_id").size().between(2, 4).all()
    assert set(study.goals["client_id"]) == clients
    first = sessions[sessions["session_number"] == 1]
    assert set(first["client_id"]) == clients
    assert (first["status"] == "attended").all()


def test_some_items_are_missing_so_prorating_is_needed(big):
    m = big.measures
    phq = m[m["instrument"] == "phq9"]
    answered = phq.groupby(["client_id", "session_number"]).size()
    share_missing = 1 - answered.sum() / (9 * len(answered))
    assert 0.01 < share_missing < 0.03
    assert ((answered == 7) | (answered == 8)).any()  # prorated
    assert (answered < 7).any()  # no score
    # a few attended sessions have no PHQ-9 at all
    attended = big.sessions[big.sessions["status"] == "attended"]
    assert len(answered) - len(big.clients) < len(attended)


def test_wai_sr_schedule(big):
    m = big.measures
    client = m[(m["instrument"] == "wai_sr") & (m["rater"] == "client")]
    sessions = set(client["session_number"])
    assert {1, 2, 3, 5, 7} <= sessions
    assert not sessions & {0, 4, 6, 8}
    therapist = m[(m["instrument"] == "wai_sr") & (m["rater"] == "therapist")]
    assert set(therapist["session_number"]) <= {3, 6, 9, 12}


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_study_different_seed_different_study(study):
    again = simulate_study(n_clients=300, n_therapists=12, n_sites=3, seed=7)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(study, table), getattr(again, table))
    assert again.truth == study.truth
    other = simulate_study(n_clients=300, n_therapists=12, n_sites=3, seed=8)
    assert not other.clients["client_id"].equals(study.clients["client_id"])
    assert not other.measures["value"].equals(study.measures["value"])


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_files_are_byte_identical_for_the_same_seed(tmp_path, fmt):
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_study(simulate_study(n_clients=120, seed=3), first, fmt)
    write_study(simulate_study(n_clients=120, seed=3), second, fmt)
    write_study(simulate_study(n_clients=120, seed=4), third, fmt)
    names = {f"{t}.{fmt}" for t in TABLES} | {"truth.json"}
    assert set(_digests(first)) == names  # and no temporary files left behind
    assert _digests(first) == _digests(second)
    assert _digests(first)["measures." + fmt] != _digests(third)["measures." + fmt]


def test_csv_format(tmp_path, study):
    write_study(study, tmp_path)
    sessions_text = (tmp_path / "sessions.csv").read_text("utf-8")
    header, first = sessions_text.splitlines()[:2]
    assert header == ",".join(COLUMNS["sessions"])
    assert "\r" not in sessions_text and '"' not in sessions_text
    cells = first.split(",")
    assert cells[1] == "1" and cells[3] == "0"  # integers without ".0"
    assert cells[6] in ("true", "false") and cells[8] in ("true", "false")
    missed = [line for line in sessions_text.splitlines() if ",cancelled," in line]
    assert missed and all(line.endswith(",,,") for line in missed)  # empty cell = missing
    measures_text = (tmp_path / "measures.csv").read_text("utf-8")
    assert ".0," not in measures_text and ".0\n" not in measures_text
    assert re.search(r"^C[A-Z]+,0,phq9,client,1,\d,intake$", measures_text, re.M)
    # read back, the tables equal the frames
    for table in TABLES:
        back = pd.read_csv(tmp_path / f"{table}.csv", keep_default_na=False, na_values=[""])
        frame = getattr(study, table)
        assert len(back) == len(frame)
        for column in frame.columns:
            ours = frame[column].astype(object).where(frame[column].notna(), None)
            theirs = back[column].astype(object).where(back[column].notna(), None)
            if pd.api.types.is_numeric_dtype(frame[column]) and frame[column].dtype != bool:
                np.testing.assert_allclose(
                    frame[column].astype(float).to_numpy(na_value=np.nan),
                    back[column].astype(float).to_numpy(),
                    err_msg=f"{table}.{column}",
                )
            else:
                assert ours.tolist() == theirs.tolist(), f"{table}.{column}"


def test_truth_json_is_sorted_and_indented(tmp_path, study):
    write_study(study, tmp_path)
    text = (tmp_path / "truth.json").read_text("utf-8")
    assert text == json.dumps(study.truth, sort_keys=True, indent=2) + "\n"


def test_writing_another_format_replaces_the_tables(tmp_path, study):
    write_study(study, tmp_path, "csv")
    write_study(study, tmp_path, "parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{t}.parquet" for t in TABLES] + ["truth.json"]
    )
    back = pd.read_parquet(tmp_path / "goals.parquet")
    assert list(back.columns) == COLUMNS["goals"]
    assert back["client_id"].tolist() == study.goals["client_id"].tolist()
    with pytest.raises(ConfigError):
        write_study(study, tmp_path, "xlsx")


# --------------------------------------------------------------------------- truth and settings


def test_truth_names_every_planted_effect(study):
    truth = json.loads(json.dumps(study.truth))  # JSON-serialisable
    assert truth == study.truth
    assert truth["seed"] == 7 and truth["n_clients"] == 300
    growth = truth["growth"]
    assert growth["outcome"] == "phq9"
    assert growth["time"] == "session_number"
    assert growth["exposure"] == "joint_goal_share"
    assert growth["time_x_exposure"] == -0.25
    assert growth["time_x_exposure_direct"] + growth["time_x_exposure_via_alliance"] == (
        pytest.approx(-0.25)
    )
    assert truth["lagged"]["within_alliance"] == -1.0
    assert truth["dropout"]["rate"] == 0.197
    assert truth["dropout"]["log_odds_exposure"] < 0
    assert truth["therapist"]["variance_share"] == 0.05
    assert truth["rows"] == {t: len(getattr(study, t)) for t in TABLES}
    assert set(truth["arms"]["labels"]) == {"collaborative", "usual_care"}


def test_effects_can_be_overridden_and_unknown_ones_are_refused():
    study = simulate_study(n_clients=50, growth_time_x_exposure=-0.5, lagged_within_alliance=0.0)
    assert study.truth["growth"]["time_x_exposure"] == -0.5
    assert study.truth["lagged"]["within_alliance"] == 0.0
    with pytest.raises(ConfigError, match="no_such_effect"):
        simulate_study(n_clients=50, no_such_effect=1.0)
    with pytest.raises(ConfigError):
        simulate_study(n_clients=0)
    with pytest.raises(ConfigError):
        simulate_study(n_therapists=2, n_sites=3)
    with pytest.raises(ConfigError):
        simulate_study(dropout_rate=1.5)


# --------------------------------------------------------------------------- plausibility


def test_arms_are_balanced_and_collaborative_clients_set_more_goals_jointly(big):
    arms = big.clients.set_index("client_id")["arm"]
    assert arms.value_counts().to_dict() == {"collaborative": 1000, "usual_care": 1000}
    share = _joint_share(big.goals)
    by_arm = share.groupby(arms).mean()
    assert by_arm["collaborative"] > by_arm["usual_care"] + 0.2
    assert share.between(0, 1).all()


def test_dropout_rate_and_its_predictors_are_plausible(big):
    clients = big.clients.set_index("client_id")
    dropout = clients["end_reason"] == "dropout"
    assert 0.16 < dropout.mean() < 0.24  # Swift & Greenberg 2012: 19.7 %
    assert clients["end_reason"].value_counts(normalize=True)["completed"] > 0.5
    share = _joint_share(big.goals)
    assert share[dropout].mean() < share[~dropout].mean()
    # weak early alliance goes with dropping out (Sharf et al. 2010: d = .55)
    m = big.measures
    wai = m[(m["instrument"] == "wai_sr") & (m["rater"] == "client") & (m["session_number"] <= 3)]
    early = wai.groupby("client_id")["value"].mean().reindex(clients.index)
    d = (early[~dropout].mean() - early[dropout].mean()) / early.std()
    assert 0.25 < d < 0.9
    # dropouts stop coming: fewer attended sessions, and nothing scheduled after a last miss
    sessions = big.sessions
    attended = sessions[sessions["status"] == "attended"].groupby("client_id").size()
    assert attended[dropout].mean() < attended[clients["end_reason"] == "completed"].mean() - 2
    last = sessions.groupby("client_id")["status"].last()
    assert set(last[dropout]) <= {"attended", "no_show"}
    assert set(last[~dropout]) == {"attended"}


def test_phq9_at_intake_is_calibrated(big):
    totals = _phq9_totals(big.measures)
    intake = totals.loc[totals["session_number"] == 0, "phq9"]
    assert intake.mean() == pytest.approx(16, abs=0.5)
    assert intake.std() == pytest.approx(4, abs=0.4)
    last = totals.groupby("client_id")["phq9"].last()
    assert 8 < last.mean() < 14  # symptoms improve on average


def test_alliance_relates_to_the_exposure_as_in_the_meta_analyses(big):
    m = big.measures
    wai = m[(m["instrument"] == "wai_sr") & (m["rater"] == "client") & (m["session_number"] <= 3)]
    early = wai.groupby("client_id")["value"].mean()
    share = _joint_share(big.goals).reindex(early.index)
    r = np.corrcoef(share, early)[0, 1]
    assert 0.15 < r < 0.4  # goal consensus / collaboration r = .24-.29


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize(("seed", "effect"), [(2026, None), (11, -0.5)])
def test_growth_model_recovers_the_time_x_exposure_effect(seed, effect):
    kwargs = {} if effect is None else {"growth_time_x_exposure": effect}
    study = simulate_study(n_clients=600, seed=seed, **kwargs)
    data = _phq9_totals(study.measures).join(_joint_share(study.goals).rename("x"), "client_id")
    fit = smf.ols("phq9 ~ session_number * x", data).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["client_id"])[0]}
    )
    low, high = fit.conf_int().loc["session_number:x"]
    truth = study.truth["growth"]["time_x_exposure"]
    assert low < truth < high
    assert fit.params["session_number"] == pytest.approx(
        study.truth["growth"]["time_slope"], abs=0.1
    )


def test_lagged_model_recovers_the_within_person_alliance_effect():
    study = simulate_study(n_clients=600, seed=5)
    m = study.measures
    wai = m[(m["instrument"] == "wai_sr") & (m["rater"] == "client")]
    wai = wai.groupby(["client_id", "session_number"])["value"].agg(["mean", "count"])
    wai = wai.loc[wai["count"] == 12, "mean"].rename("wai").reset_index()
    panel = _phq9_totals(m).merge(wai, on=["client_id", "session_number"], how="left")
    panel = panel.sort_values(["client_id", "session_number"])
    panel["phq9_next"] = panel.groupby("client_id")["phq9"].shift(-1)
    person = panel.groupby("client_id")["wai"].transform("mean")
    panel["within"] = panel["wai"] - person
    panel["between"] = person - person.mean()
    data = panel.dropna(subset=["phq9_next", "within"])
    fit = smf.ols("phq9_next ~ phq9 + within + between + session_number", data).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["client_id"])[0]}
    )
    low, high = fit.conf_int().loc["within"]
    assert low < study.truth["lagged"]["within_alliance"] < high


def test_therapist_slopes_change_only_the_outcome_scores() -> None:
    from accord.simulate import simulate_study

    design = {"n_clients": 60, "n_therapists": 6, "n_sites": 1, "seed": 3}
    plain = simulate_study(**design)
    pd.testing.assert_frame_equal(
        plain.measures, simulate_study(**design, therapist_slope_sd=0.0).measures
    )
    sloped = simulate_study(**design, therapist_slope_sd=0.3)
    for table in ("clients", "sessions"):
        pd.testing.assert_frame_equal(getattr(plain, table), getattr(sloped, table))
    # Goals are set as before; how they end follows the client's improvement.
    set_up = ["client_id", "goal_id", "set_session", "set_by"]
    pd.testing.assert_frame_equal(plain.goals[set_up], sloped.goals[set_up])
    phq9 = [s.measures.loc[s.measures["instrument"] == "phq9"] for s in (plain, sloped)]
    assert (
        not phq9[0]["value"].reset_index(drop=True).equals(phq9[1]["value"].reset_index(drop=True))
    )
    assert sloped.truth["therapist"]["slope_sd"] == 0.3

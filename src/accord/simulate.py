"""Synthetic psychotherapy outcome studies with known, planted effects.

`simulate_study` draws a whole study in the shape of the data contract (clients, sessions,
measures, goals) together with `truth`, the parameters that generated it, so every stage of the
pipeline can be checked against known answers and benchmarked at any size. Everything is
vectorised over clients and seeded: the same arguments give the same tables, and `write_study`
writes the same bytes. Text columns use pandas' arrow-backed `str` dtype, which keeps tens of
millions of measure rows compact.

Data-generating model (i = client, j = therapist, t = session_number, 0 = intake)
-----------------------------------------------------------------------------------
Design
  Therapists are spread over sites (every site has at least one); clients are assigned to
  therapists with uneven caseloads and randomised 1:1 to `collaborative` or `usual_care`.
  Age 18..89 (no one 90 or over), age band, gender, intake year 2019..2024.

Goals and the exposure
  Each client has 2-4 goals, agreed at session 0 or 1. A client's per-goal probability of
  setting a goal jointly is p_i ~ Beta with mean `p_joint_collaborative` or
  `p_joint_usual_care` (concentration 4); other goals are set by the client or the therapist
  (equally likely). The exposure x_i = joint_goal_share = share of the client's goals set
  jointly. Joint goals are more often SMART and their importance ratings agree more closely.

Alliance (WAI-SR item-mean scale, 1-5), at scheduled appointment t (seen when attended)
  A_it = mu_A + a_x (x_i - 0.5) + u_i + tau_j + trend (t - 1) + w_it,
  u_i ~ N(0, alliance_between_sd), tau_j ~ N(0, alliance_therapist_sd),
  w_it ~ N(0, alliance_within_sd), independent across appointments (the within-person part).
  The client's alliance level is A_i = mu_A + a_x (x_i - 0.5) + u_i + tau_j; with the default
  a_x its correlation with the exposure is about .26 (goal consensus and collaboration with
  outcome: r = .24 and .29, Tryon, Birch & Verkuilen 2018). Therapist-rated WAI-SR follows half
  of the client's deviation plus rater noise; SRS is driven by the same latent alliance.

Dropout
  logit P(dropout_i) = alpha + b_x x_i + b_w wbar_i + b_l (A_i - mu_A), where wbar_i is the
  mean within-person alliance over the first three appointments (early dips and ruptures).
  alpha is solved so that the expected rate over the drawn clients is `dropout_rate` (19.7 %,
  Swift & Greenberg 2012); the default b_w makes the early alliance of dropouts about .55 SD
  lower (Sharf et al. 2010). The dips do not touch the PHQ-9 slope, so by default dropout is
  ignorable for the growth model. b_l (`dropout_log_odds_alliance_level`) is 0 by default:
  the stable level also steepens the PHQ-9 slope, so a non-zero b_l makes dropout informative
  (not at random) for a growth model that leaves the alliance out, for trying sensitivity
  analyses.
  A client who drops out attends 1..L_i - 1 of their planned L_i sessions (early exits more
  likely), often misses one last scheduled appointment, and has no sessions after that. Other
  clients complete, are referred, end for another reason, or are still in treatment (intake in
  the last year). Appointments are attended, cancelled or missed (no_show) with a
  client-specific attendance propensity; session 1 is always attended; at most `max_sessions`
  are scheduled; treatment ends at the last attended session (or a last missed one).

PHQ-9 (total, 0-27) at intake and every attended session
  Y_it = mu_0 + v_j + b_i + s_i t + lambda w_i,prev + e_it,
  s_i = g_1 + g_x x_i + b_A (u_i + tau_j) + w_j + c_i.
  g_x (`growth_time_x_exposure`) is the total time x exposure effect, what y ~ time * exposure
  estimates: g_x - b_A a_x acts directly and b_A a_x through the alliance, since
  b_A (u_i + tau_j) = b_A (A_i - mu_A) - b_A a_x (x_i - 0.5). w_i,prev is the within-person
  alliance deviation at the client's previous attended session (0 at intake and at the first
  session): lambda (`lagged_within_alliance`) moves next-session PHQ-9 per WAI-SR point.
  b_i ~ N(0, sd_b), c_i ~ N(0, client_slope_sd), e_it ~ N(0, residual_sd), v_j ~ N(0, sd_v),
  w_j ~ N(0, therapist_slope_sd) (default 0): therapists whose clients improve faster or slower,
  which is what a therapist effect on post scores adjusted for intake measures.
  sd_v is set so that therapists hold `therapist_variance_share` of the PHQ-9 variance over
  all assessments (ICC_therapist of a null model of assessments in clients in therapists;
  about 5 %, Wampold & Brown 2005), and sd_b so that the intake SD is `intake_sd`.
  Trajectories are linear in session_number: with many more than 12 sessions a growing share
  of clients reaches the floor of 0, which flattens slopes estimated from scored totals.
  GAD-7 is 0.75 Y_it plus a client offset and noise.

Items
  A latent total is rounded and clipped into the instrument's range: that is the item sum.
  Item j starts at total / k + d_j + noise (d_j an item difficulty) clipped to the item range;
  the items are shifted in proportion to their room until they sum to the total, and then
  rounded cumulatively (which keeps the sum). So scored totals equal the rounded latent totals,
  linear models on them recover the planted effects, and the items still carry item-specific
  noise (Cronbach's alpha about .85 for PHQ-9). A few items (PHQ-9 2 %, GAD-7 1 %, WAI-SR 1 %,
  SRS 0.5 %) and whole forms are missing (rows absent), exercising prorating and the
  missing-item rules.

Schedule of measures (attended sessions only; session numbers count scheduled appointments)
  PHQ-9 and GAD-7 at intake (session 0, phase intake) and every attended session; SRS every
  attended session; client-rated WAI-SR at sessions 1, 2, 3 and then every other one (5, 7, ..);
  therapist-rated WAI-SR every third session; GAS (item = goal_id, -2..2) every fourth session
  and at the client's last attended session, for goals agreed before that session.

Goal effects (each recorded in truth: congruence, goal_attainment, check_in)
  GAS level of goal g of client i at session t: the rounding of
    GAS_MEAN + gas_joint joint_g + gas_smart m_g + p_i t + c_i + d_g + e_gt, clipped to -2..2,
  m_g the number of SMART criteria the goal meets, p_i = -0.2 times the client's PHQ-9 slope
  beyond what their exposure predicts (so it does not depend on the exposure), c_i and e_gt
  normal, d_g a goal deviation tied to achievement. A goal is achieved with probability
  expit(achieved_intercept + achieved_joint joint_g + achieved_smart m_g), goals independent
  given these; d_g is a normal quantile of that same draw, so achieved goals rate higher.
  Who set a goal, its SMART criteria and importance ratings are drawn when it is set and
  depend on the client's arm and exposure, never on attainment: a mixed model of the last GAS
  level (and a GEE of achieved) on them recovers the planted effects, importance agreement and
  set_session having none. Some goals are revised or abandoned (more often by dropouts).
  Congruence surface: every PHQ-9 assessment after intake moves by b1 C + b2 T + b3 C^2 +
  b4 C T + b5 T^2 (congruence_b1..b5, 0 by default), C and T the client's and the therapist's
  mean WAI-SR Goal score over the first 3 sessions each scored, centred on 3, exactly as the
  congruence model forms them. The ratings also carry the alliance level, which steepens the
  PHQ-9 slope: a congruence fit recovers a1..a4 alone with alliance_slope, alliance_exposure,
  lagged_within_alliance and dropout_log_odds_alliance set to 0.
  Check-ins: a session is off track when its PHQ-9 noise lies above the upper limit of the
  central 80 % band; when the client's next attended session records a goal review, the
  attended session after it moves by check_in_effect PHQ-9 points (0 by default).

Homework completion depends on the exposure only (no effect on outcome, so it is a null
mediator); goal reviews are more frequent in the collaborative arm.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.special import ndtri

from accord.core.errors import ConfigError
from accord.core.io import atomic_path, write_json

__all__ = [
    "Effects",
    "SimulatedConsortium",
    "SimulatedStudy",
    "consortium_site_settings",
    "simulate_consortium",
    "simulate_study",
    "write_consortium",
    "write_study",
]

TABLES = ("clients", "sessions", "measures", "goals")
ARMS = ("collaborative", "usual_care")
GENDERS = ("female", "male", "nonbinary")
GENDER_P = (0.63, 0.35, 0.02)
AGE_BAND_EDGES = (25, 35, 45, 55, 65)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65-89")
INTAKE_YEARS = (2019, 2024)
END_REASONS = ("completed", "dropout", "referred", "ongoing", "other")
# Shares of all clients who end in each non-dropout way other than completing.
END_SHARES = {"ongoing": 0.05, "referred": 0.04, "other": 0.03}
STATUSES = ("attended", "cancelled", "no_show")
MODALITIES = ("in_person", "video", "phone", "other")
SET_BY = ("client", "therapist", "joint")
GOAL_STATUSES = ("active", "achieved", "revised", "abandoned")
MAX_GOALS = 4
GOAL_IDS = tuple(f"G{k + 1}" for k in range(MAX_GOALS))
# Consonants only: a pseudonym can never spell a word, a date or a number, and cannot contain
# any category label (every label has a vowel or a digit).
ID_ALPHABET = np.array(list("BCDFGHJKLMNPQRSTVWXZ"))

# Item difficulties (added to total / k); each set sums to zero.
PHQ9_OFFSETS = np.array([0.25, 0.2, 0.35, 0.4, 0.1, 0.1, 0.05, -0.3, -1.15])
GAD7_OFFSETS = np.array([0.2, 0.1, 0.25, 0.05, -0.3, 0.0, -0.3])
WAI_OFFSETS = np.array([0.1, -0.05, 0.15, -0.1, 0.2, 0.0, 0.1, -0.15, 0.05, -0.1, -0.2, 0.0])
SRS_OFFSETS = np.array([0.2, 0.0, -0.1, -0.1])

ITEM_MISSING = {"phq9": 0.02, "gad7": 0.01, "wai_sr": 0.01, "srs": 0.005, "gas": 0.03}
FORM_MISSING = {"phq9_gad7": 0.03, "wai_sr": 0.04, "wai_sr_therapist": 0.10, "srs": 0.05}

# (instrument, rater) groups in the order of the sorted measures table.
GROUPS = (
    ("gad7", "client"),
    ("gas", "client"),
    ("phq9", "client"),
    ("srs", "client"),
    ("wai_sr", "client"),
    ("wai_sr", "therapist"),
)
GROUP_ITEMS = {"gad7": 7, "gas": MAX_GOALS, "phq9": 9, "srs": 4, "wai_sr": 12}
ITEM_SLOTS = 16  # items per group in the packed sort key
VALUE_SLOTS = 16  # item values -2..13 in the packed sort key
STR = pd.StringDtype("pyarrow", na_value=np.nan)
CSV_BLOCK_ROWS = 1 << 20
HOMEWORK_EXPOSURE = 1.2  # log-odds of homework completion per unit joint_goal_share
SMART_CRITERIA = ("specific", "measurable", "achievable", "relevant", "time_bound")
# The congruence surface reads the WAI-SR Goal subscale (items 4, 6, 8, 11) as the congruence
# model does: the mean over the first 3 sessions each rater scored, centred on 3.
GOAL_ITEMS = [3, 5, 7, 10]
SURFACE_EARLY_SESSIONS = 3
SURFACE_MIDPOINT = 3.0
OFF_TRACK_Z = 1.2815515655446004  # upper limit of the central 80 % of a normal
# GAS latent level: mean, SDs of its client, goal and rating parts, and GAS points per PHQ-9
# point of improvement beyond what the client's exposure predicts.
GAS_MEAN = -0.5
GAS_CLIENT_SD = 0.4
GAS_GOAL_SD = 0.4
GAS_RATING_SD = 0.5
GAS_PER_PHQ9 = 0.2
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


@dataclass(frozen=True)
class Effects:
    """Planted effects and latent-model settings; pass any of them to `simulate_study`.

    Units: PHQ-9 points (total 0-27), sessions (session_number), WAI-SR points (item mean 1-5),
    joint_goal_share (0-1), log-odds.
    """

    growth_intercept: float = 16.0  # mean PHQ-9 at intake
    intake_sd: float = 4.0  # SD of PHQ-9 at intake, all sources together
    growth_time: float = -0.42  # PHQ-9 points per session at joint_goal_share 0
    growth_time_x_exposure: float = -0.25  # PHQ-9 points per session per unit joint_goal_share
    client_slope_sd: float = 0.2  # client slope SD beyond exposure and alliance
    residual_sd: float = 2.0  # assessment-level PHQ-9 noise
    therapist_variance_share: float = 0.05  # therapist share of PHQ-9 variance
    therapist_slope_sd: float = 0.0  # therapist SD of the PHQ-9 slope (points per session)
    alliance_mean: float = 3.6  # WAI-SR at session 1 for joint_goal_share 0.5
    alliance_exposure: float = 0.4  # WAI-SR points per unit joint_goal_share
    alliance_between_sd: float = 0.5  # client-level WAI-SR SD beyond the exposure
    alliance_therapist_sd: float = 0.15  # therapist-level WAI-SR SD
    alliance_within_sd: float = 0.45  # session-to-session WAI-SR SD
    alliance_trend: float = 0.02  # WAI-SR points per session
    alliance_slope: float = -0.2  # PHQ-9 points per session per WAI-SR point of client level
    lagged_within_alliance: float = -1.0  # next-session PHQ-9 points per within WAI-SR point
    dropout_rate: float = 0.197  # expected share of clients who drop out
    dropout_log_odds_exposure: float = -1.0  # per unit joint_goal_share
    dropout_log_odds_alliance: float = -6.0  # per WAI-SR point of early within-person alliance
    dropout_log_odds_alliance_level: float = 0.0  # per WAI-SR point of the stable level
    p_joint_collaborative: float = 0.7  # mean per-goal probability of setting a goal jointly
    p_joint_usual_care: float = 0.35
    # Congruence: PHQ-9 points after intake on the early WAI-SR Goal ratings of client (C) and
    # therapist (T), centred on 3: b1 C + b2 T + b3 C^2 + b4 C T + b5 T^2 (0: no surface).
    congruence_b1: float = 0.0
    congruence_b2: float = 0.0
    congruence_b3: float = 0.0
    congruence_b4: float = 0.0
    congruence_b5: float = 0.0
    gas_joint: float = 0.3  # GAS points for a goal set jointly (vs by the client)
    gas_smart: float = 0.1  # GAS points per SMART criterion the goal meets
    achieved_intercept: float = -1.6  # log-odds of achieved, client-set goal, no SMART criterion
    achieved_joint: float = 0.5  # log-odds of achieved for a goal set jointly
    achieved_smart: float = 0.15  # log-odds of achieved per SMART criterion met
    check_in_effect: float = 0.0  # PHQ-9 points after a goal review that follows off track


@dataclass
class SimulatedStudy:
    """The four contract tables of a synthetic study and the truth that generated them."""

    clients: pd.DataFrame
    sessions: pd.DataFrame
    measures: pd.DataFrame
    goals: pd.DataFrame
    truth: dict


def simulate_study(
    n_clients: int = 400,
    n_therapists: int = 25,
    n_sites: int = 3,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> SimulatedStudy:
    """Draw a synthetic study with known effects (the model is in the module docstring).

    `effects` overrides fields of `Effects` by name, e.g. `growth_time_x_exposure=-0.4`.
    Raises ConfigError for an unknown effect or an impossible design.
    """
    eff = _effects(effects)
    n, n_t, n_s, M = int(n_clients), int(n_therapists), int(n_sites), int(max_sessions)
    _check_design(int(seed), n, n_t, n_s, M, eff)
    streams = _Streams(int(seed))
    design = _draw_design(streams, n, n_t, n_s)
    plan = _draw_goal_plan(streams, design.collab, eff)
    course = _draw_course(streams, design, plan.x, eff, M)
    schedule = _draw_schedule(streams, design, plan.x, course, M)
    latent = _draw_latent(streams, design, plan.x, course, schedule, eff)
    details = _draw_goal_details(streams, plan, design.collab)
    keys, ratings = _questionnaire_keys(streams, latent, schedule.a_client, eff, M)
    gas_keys, achieved = _draw_gas(streams, plan, details, latent, schedule, eff, M)
    keys.append(gas_keys)
    measures = _measures_frame(keys, design.client_ids, M)
    goals = _goals_frame(design, plan, details, course.dropout, achieved, schedule)
    clients = _clients_frame(design, course.end_code)
    sessions = _sessions_frame(design.client_ids, schedule)
    truth = _truth(
        design={"seed": int(seed), "n_clients": n, "n_therapists": n_t, "n_sites": n_s},
        max_sessions=M,
        eff=eff,
        collab=design.collab,
        x=plan.x,
        course=course,
        latent=latent,
        ratings=ratings,
        rows={
            "clients": len(clients),
            "sessions": len(sessions),
            "measures": len(measures),
            "goals": len(goals),
        },
    )
    return SimulatedStudy(clients, sessions, measures, goals, truth)


@dataclass
class _Design:
    client_ids: np.ndarray
    therapist_ids: np.ndarray
    site_ids: np.ndarray
    therapist_site: np.ndarray
    therapist: np.ndarray
    collab: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    intake_year: np.ndarray


@dataclass
class _GoalPlan:
    n_goals: np.ndarray
    valid: np.ndarray  # n x MAX_GOALS: the client has this goal
    joint: np.ndarray
    set_by: np.ndarray
    set_session: np.ndarray
    x: np.ndarray  # joint_goal_share


@dataclass
class _Course:
    alliance_dev: np.ndarray
    alliance_level: np.ndarray
    within_m: np.ndarray  # n x M within-person alliance per scheduled appointment
    early_dip: np.ndarray
    dropout: np.ndarray
    dropout_alpha: float
    end_code: np.ndarray


@dataclass
class _Schedule:
    s_client: np.ndarray  # one entry per scheduled appointment
    s_slot: np.ndarray
    s_status: np.ndarray
    day_m: np.ndarray
    modality_m: np.ndarray
    duration_m: np.ndarray
    homework_m: np.ndarray
    completion_m: np.ndarray
    review_m: np.ndarray
    a_client: np.ndarray  # one entry per attended session
    a_time: np.ndarray
    last_attended: np.ndarray


@dataclass
class _Latent:
    alliance: np.ndarray  # per attended session
    slope: np.ndarray  # per client
    slope_deviation: np.ndarray  # slope minus its mean given the exposure
    o_client: np.ndarray  # assessments: intake, then attended sessions
    o_time: np.ndarray
    phq: np.ndarray
    gad: np.ndarray
    var_therapist: float
    var_client: float
    v: np.ndarray
    check_ins: int


@dataclass
class _GoalDetails:
    status_u: np.ndarray
    abandon_u: np.ndarray
    revised_u: np.ndarray
    client_importance: np.ndarray
    therapist_importance: np.ndarray
    smart: np.ndarray  # 5 x n x MAX_GOALS


def _draw_design(streams: _Streams, n: int, n_t: int, n_s: int) -> _Design:
    """Pseudonyms, sites, therapists with uneven caseloads, arms and demographics."""
    r = streams("ids")
    client_ids = np.sort(_pseudonyms(r, "C", n, 7))
    therapist_ids = _pseudonyms(r, "T", n_t, 5)
    site_ids = _pseudonyms(r, "S", n_s, 4)
    r = streams("design")
    therapist_site = r.permutation(np.arange(n_t) % n_s)
    caseload = r.gamma(4.0, size=n_t)
    therapist = r.choice(n_t, size=n, p=caseload / caseload.sum())
    collab = r.permutation(np.arange(n) < (n + 1) // 2)
    r = streams("demographics")
    age = np.clip(np.rint(18 + r.gamma(2.2, 9.0, size=n)), 18, 89).astype(np.int64)
    gender = r.choice(len(GENDERS), size=n, p=GENDER_P)
    intake_year = r.integers(INTAKE_YEARS[0], INTAKE_YEARS[1] + 1, size=n)
    return _Design(
        client_ids,
        therapist_ids,
        site_ids,
        therapist_site,
        therapist,
        collab,
        age,
        gender,
        intake_year,
    )


def _draw_goal_plan(streams: _Streams, collab: np.ndarray, eff: Effects) -> _GoalPlan:
    """Each client's goals, who set them and when, and the exposure joint_goal_share."""
    n = collab.size
    r = streams("goals")
    n_goals = r.choice([2, 3, 4], size=n, p=[0.3, 0.45, 0.25])
    p_mean = np.where(collab, eff.p_joint_collaborative, eff.p_joint_usual_care)
    p_joint = r.beta(4.0 * p_mean, 4.0 * (1.0 - p_mean))
    valid = np.arange(MAX_GOALS)[None, :] < n_goals[:, None]
    joint = (r.random((n, MAX_GOALS)) < p_joint[:, None]) & valid
    set_by = np.where(joint, 2, (r.random((n, MAX_GOALS)) < 0.5).astype(np.int64))
    set_session = (r.random((n, MAX_GOALS)) >= 0.6).astype(np.int64)
    return _GoalPlan(n_goals, valid, joint, set_by, set_session, joint.sum(axis=1) / n_goals)


def _draw_course(
    streams: _Streams, design: _Design, x: np.ndarray, eff: Effects, M: int
) -> _Course:
    """Alliance level, dropout and how each client's treatment ends."""
    n, n_t = x.size, design.therapist_ids.size
    r = streams("alliance")
    tau = r.normal(0.0, eff.alliance_therapist_sd, n_t)
    alliance_dev = r.normal(0.0, eff.alliance_between_sd, n) + tau[design.therapist]
    alliance_level = eff.alliance_mean + eff.alliance_exposure * (x - 0.5) + alliance_dev
    within_m = r.normal(0.0, eff.alliance_within_sd, (n, M))
    early_dip = within_m[:, :3].mean(axis=1)
    r = streams("dropout")
    dropout_lp = (
        eff.dropout_log_odds_exposure * x
        + eff.dropout_log_odds_alliance * early_dip
        + eff.dropout_log_odds_alliance_level * (alliance_level - eff.alliance_mean)
    )
    dropout_alpha = _solve_intercept(dropout_lp, eff.dropout_rate)
    dropout = r.random(n) < _expit(dropout_alpha + dropout_lp)
    u_end = r.random(n)
    cuts = np.cumsum([END_SHARES["ongoing"], END_SHARES["referred"], END_SHARES["other"]])
    end_code = np.select(
        [dropout, u_end < cuts[0], u_end < cuts[1], u_end < cuts[2]], [1, 3, 2, 4], default=0
    )
    design.intake_year[end_code == 3] = INTAKE_YEARS[1]
    return _Course(
        alliance_dev, alliance_level, within_m, early_dip, dropout, dropout_alpha, end_code
    )


def _draw_schedule(
    streams: _Streams, design: _Design, x: np.ndarray, course: _Course, M: int
) -> _Schedule:
    """Appointments: how many sessions each client attends, which ones are missed, and what
    each records (day, modality, duration, homework, goal review)."""
    n, dropout, collab = x.size, course.dropout, design.collab
    r = streams("sessions")
    planned = np.clip(np.rint(r.normal(0.82 * M, M / 6.0, n)), 2, M).astype(np.int64)
    early_exit = 1 + np.floor(r.random(n) ** 1.6 * (planned - 1)).astype(np.int64)
    any_exit = 1 + np.floor(r.random(n) * (planned - 1)).astype(np.int64)
    target = np.where(course.end_code == 0, planned, np.where(dropout, early_exit, any_exit))
    p_attend = _expit(r.normal(2.0, 0.7, n))
    attended_m = r.random((n, M)) < p_attend[:, None]
    attended_m[:, 0] = True
    reached = np.cumsum(attended_m, axis=1) >= target[:, None]
    # Treatment ends at the target's session, or at the last attended one within the cap.
    last_visit = M - 1 - attended_m[:, ::-1].argmax(axis=1)
    last_slot = np.where(reached.any(axis=1), reached.argmax(axis=1), last_visit)
    trailing_miss = dropout & (last_slot < M - 1) & (r.random(n) < 0.6)
    n_scheduled = last_slot + 1 + trailing_miss
    status_m = np.where(attended_m, 0, np.where(r.random((n, M)) < 0.55, 1, 2))
    missed_last = np.flatnonzero(trailing_miss)
    status_m[missed_last, last_slot[missed_last] + 1] = 2
    gap = 7 + r.integers(-2, 3, (n, M)) + 7 * (r.random((n, M)) < 0.1)
    gap[:, 0] = 0
    day_m = np.cumsum(gap, axis=1)
    preferred = r.choice(3, size=n, p=[0.6, 0.3, 0.1])
    modality_m = np.where(
        r.random((n, M)) < 0.85, preferred[:, None], r.choice(4, (n, M), p=[0.4, 0.3, 0.2, 0.1])
    )
    duration_m = r.choice([45, 50, 50, 50, 55, 60], (n, M))
    duration_m[:, 0] = r.choice([60, 90], n)
    homework_m = r.random((n, M)) < _expit(0.3 + 0.5 * collab)[:, None]
    completion_m = _expit(
        0.4
        + HOMEWORK_EXPOSURE * (x - 0.5)[:, None]
        + r.normal(0.0, 0.8, n)[:, None]
        + r.normal(0.0, 0.6, (n, M))
    )
    completion_m = np.rint(completion_m * 20.0) / 20.0
    review_m = r.random((n, M)) < _expit(-0.6 + 0.9 * collab + 0.6 * (x - 0.5))[:, None]
    s_client, s_slot = np.nonzero(np.arange(M)[None, :] < n_scheduled[:, None])
    s_status = status_m[s_client, s_slot]
    s_attended = s_status == 0
    a_client, a_time = s_client[s_attended], s_slot[s_attended] + 1
    last_attended = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_attended, a_client, a_time)
    return _Schedule(
        s_client,
        s_slot,
        s_status,
        day_m,
        modality_m,
        duration_m,
        homework_m,
        completion_m,
        review_m,
        a_client,
        a_time,
        last_attended,
    )


def _draw_latent(
    streams: _Streams,
    design: _Design,
    x: np.ndarray,
    course: _Course,
    schedule: _Schedule,
    eff: Effects,
) -> _Latent:
    """Latent alliance at every attended session and PHQ-9 and GAD-7 at intake and at every
    attended session (the model in the module docstring), check-ins included."""
    n, n_t, therapist = x.size, design.therapist_ids.size, design.therapist
    a_client, a_time = schedule.a_client, schedule.a_time
    r = streams("latent")
    within = course.within_m[a_client, a_time - 1]
    alliance = course.alliance_level[a_client] + eff.alliance_trend * (a_time - 1) + within
    first_visit = np.r_[True, a_client[1:] != a_client[:-1]]
    within_prev = np.where(first_visit, 0.0, np.r_[0.0, within[:-1]])
    # Therapists who differ in how fast their clients improve: drawn from a stream of its own,
    # so a study without them (the default) keeps every other draw.
    w = streams("therapist_slopes").normal(0.0, 1.0, n_t) * eff.therapist_slope_sd
    slope_deviation = (
        eff.alliance_slope * course.alliance_dev
        + w[therapist]
        + r.normal(0.0, eff.client_slope_sd, n)
    )
    slope = eff.growth_time + eff.growth_time_x_exposure * x + slope_deviation
    o_client = np.r_[np.arange(n), a_client]
    o_time = np.r_[np.zeros(n, dtype=np.int64), a_time]
    noise = r.normal(0.0, eff.residual_sd, o_client.size)
    change = (
        slope[o_client] * o_time
        + eff.lagged_within_alliance * np.r_[np.zeros(n), within_prev]
        + noise
    )
    # Therapist variance: share s of all PHQ-9 variance, with the intake variance fixed.
    other_var = float(np.var(change))
    var_therapist = eff.therapist_variance_share * (
        eff.intake_sd**2 - eff.residual_sd**2 + other_var
    )
    var_client = eff.intake_sd**2 - eff.residual_sd**2 - var_therapist
    if var_client <= 0:
        raise ConfigError(
            "intake_sd is too small for residual_sd and therapist_variance_share: "
            "no variance is left between clients"
        )
    v = r.normal(0.0, np.sqrt(var_therapist), n_t)
    level = eff.growth_intercept + v[therapist] + r.normal(0.0, np.sqrt(var_client), n)
    phq = level[o_client] + change
    del change
    gad = 0.75 * phq + r.normal(0.5, 1.8, n)[o_client] + r.normal(0.0, 1.5, o_client.size)
    check_in = _check_in_shift(noise[n:], a_client, a_time, schedule.review_m, eff)
    phq[n:] += check_in
    return _Latent(
        alliance,
        slope,
        slope_deviation,
        o_client,
        o_time,
        phq,
        gad,
        var_therapist,
        var_client,
        v,
        int(np.count_nonzero(check_in)),
    )


def _check_in_shift(
    noise: np.ndarray,
    a_client: np.ndarray,
    a_time: np.ndarray,
    review_m: np.ndarray,
    eff: Effects,
) -> np.ndarray:
    """PHQ-9 points added at each attended session (in order): `check_in_effect` at the first
    attended session after a goal review that follows an off-track session.

    A session is off track when its assessment noise lies above the upper limit of the central
    80 % band (`OFF_TRACK_Z` residual SDs); the review is the one recorded at the client's next
    attended session."""
    shift = np.zeros(a_client.size)
    if eff.check_in_effect == 0.0 or a_client.size < 3:
        return shift
    off_track = noise > OFF_TRACK_Z * eff.residual_sd
    same = a_client[1:] == a_client[:-1]
    reviewed = np.zeros(a_client.size, dtype=bool)
    reviewed[1:] = same & review_m[a_client[1:], a_time[1:] - 1]
    # Off track at k, reviewed at k + 1, helped at k + 2 (the same client's).
    helped = np.zeros(a_client.size, dtype=bool)
    helped[2:] = off_track[:-2] & reviewed[1:-1] & same[1:]
    shift[helped] = eff.check_in_effect
    return shift


def _questionnaire_keys(
    streams: _Streams, latent: _Latent, a_client: np.ndarray, eff: Effects, M: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """PHQ-9, GAD-7, WAI-SR (both raters) and SRS item rows as packed sort keys, and each
    client's early WAI-SR Goal ratings (n x 2: client, therapist; NaN where missing).

    A planted congruence surface moves every PHQ-9 assessment after intake by a function of
    the early Goal ratings, which are drawn after the PHQ-9 items: a first pass of the stream
    finds them, and a second pass draws the same items with the PHQ-9 moved (the number of
    draws does not depend on the values)."""
    n = latent.slope.size
    b = _surface_coefficients(eff)
    if any(b):
        probe = _questionnaire_items(streams("measures"), latent, a_client, eff)
        ratings = _early_goal_ratings(probe[2:4], n)
        c, t = ratings[:, 0] - SURFACE_MIDPOINT, ratings[:, 1] - SURFACE_MIDPOINT
        surface = np.nan_to_num(b[0] * c + b[1] * t + b[2] * c * c + b[3] * c * t + b[4] * t * t)
        latent.phq[n:] += surface[latent.o_client[n:]]
    parts = _questionnaire_items(streams("measures"), latent, a_client, eff)
    if not any(b):
        ratings = _early_goal_ratings(parts[2:4], n)
    keys = [_pack_values(*part, M) for part in parts]
    return keys, ratings


def _questionnaire_items(
    r: np.random.Generator, latent: _Latent, a_client: np.ndarray, eff: Effects
) -> list[tuple]:
    """(instrument, rater, client, time, items, present) of each questionnaire, drawn from
    `r` in a fixed order (the number of draws does not depend on the latent values)."""
    n, n_a = latent.slope.size, a_client.size
    a_time = latent.o_time[n:]
    alliance = latent.alliance
    parts = []
    kept = np.r_[np.ones(n, bool), r.random(n_a) >= FORM_MISSING["phq9_gad7"]]
    oc, ot = latent.o_client[kept], latent.o_time[kept]
    items = _items(r, latent.phq[kept], 9, 0, 3, PHQ9_OFFSETS, 0.4)
    parts.append(("phq9", "client", oc, ot, items, _present(r, "phq9", items)))
    items = _items(r, latent.gad[kept], 7, 0, 3, GAD7_OFFSETS, 0.4)
    parts.append(("gad7", "client", oc, ot, items, _present(r, "gad7", items)))
    due = ((a_time <= 3) | ((a_time >= 5) & (a_time % 2 == 1))) & (
        r.random(n_a) >= FORM_MISSING["wai_sr"]
    )
    items = _items(r, 12.0 * alliance[due], 12, 1, 5, WAI_OFFSETS, 0.5)
    parts.append(
        ("wai_sr", "client", a_client[due], a_time[due], items, _present(r, "wai_sr", items))
    )
    due = (a_time % 3 == 0) & (r.random(n_a) >= FORM_MISSING["wai_sr_therapist"])
    rater_view = r.normal(0.0, 0.3, n)[a_client] + r.normal(0.0, 0.25, n_a)
    therapist_rated = eff.alliance_mean - 0.1 + 0.5 * (alliance - eff.alliance_mean) + rater_view
    items = _items(r, 12.0 * therapist_rated[due], 12, 1, 5, WAI_OFFSETS, 0.5)
    parts.append(
        ("wai_sr", "therapist", a_client[due], a_time[due], items, _present(r, "wai_sr", items))
    )
    due = r.random(n_a) >= FORM_MISSING["srs"]
    srs = 36.0 + 6.0 * (alliance - eff.alliance_mean) + r.normal(0.0, 1.5, n_a)
    items = _items(r, srs[due], 4, 0, 10, SRS_OFFSETS, 0.7)
    parts.append(("srs", "client", a_client[due], a_time[due], items, _present(r, "srs", items)))
    return parts


def _present(r: np.random.Generator, instrument: str, items: np.ndarray) -> np.ndarray:
    """Which item responses are given: a random share `ITEM_MISSING[instrument]` is left out."""
    return r.random(items.shape) >= ITEM_MISSING[instrument]


def _early_goal_ratings(parts: list[tuple], n: int) -> np.ndarray:
    """Each client's mean WAI-SR Goal score (mean of items 4, 6, 8, 11, all answered) over the
    first `SURFACE_EARLY_SESSIONS` sessions each rater scored it: n x 2 (client, therapist),
    NaN where the rater scored none. Rows run by client and session, as drawn."""
    out = np.full((n, 2), np.nan)
    for column, (_, _, client, _, items, present) in enumerate(parts):
        complete = present[:, GOAL_ITEMS].all(axis=1)
        client, score = client[complete], items[complete][:, GOAL_ITEMS].mean(axis=1)
        if client.size == 0:
            continue
        starts = np.r_[0, np.flatnonzero(client[1:] != client[:-1]) + 1]
        rank = np.arange(client.size) - np.repeat(starts, np.diff(np.r_[starts, client.size]))
        early = rank < SURFACE_EARLY_SESSIONS
        total = np.bincount(client[early], score[early], minlength=n)
        count = np.bincount(client[early], minlength=n)
        out[count > 0, column] = total[count > 0] / count[count > 0]
    return out


def _surface_coefficients(eff: Effects) -> tuple[float, ...]:
    return (
        eff.congruence_b1,
        eff.congruence_b2,
        eff.congruence_b3,
        eff.congruence_b4,
        eff.congruence_b5,
    )


def _draw_goal_details(streams: _Streams, plan: _GoalPlan, collab: np.ndarray) -> _GoalDetails:
    """Importance ratings, SMART criteria and the draws that decide goal status."""
    n = collab.size
    r = streams("goal_details")
    status_u = r.random((n, MAX_GOALS))
    abandon_u = r.random((n, MAX_GOALS))
    revised_u = r.random((n, MAX_GOALS))
    client_imp = np.clip(np.rint(r.normal(4.0, 0.8, (n, MAX_GOALS))), 1, 5)
    agree_sd = np.where(plan.joint, 0.6, 1.1)
    therapist_imp = np.clip(np.rint(client_imp + agree_sd * r.normal(size=(n, MAX_GOALS))), 1, 5)
    smart_lp = 0.3 + 0.9 * plan.joint + 0.3 * collab[:, None] + r.normal(0.0, 0.7, n)[:, None]
    smart = r.random((5, n, MAX_GOALS)) < _expit(smart_lp)[None]
    return _GoalDetails(status_u, abandon_u, revised_u, client_imp, therapist_imp, smart)


def _draw_gas(
    streams: _Streams,
    plan: _GoalPlan,
    details: _GoalDetails,
    latent: _Latent,
    schedule: _Schedule,
    eff: Effects,
    M: int,
) -> tuple[np.ndarray, np.ndarray]:
    """GAS rows (packed keys) every fourth session and at the last attended one, for goals
    agreed before that session, and whether each goal was achieved (n x MAX_GOALS).

    Achieved: Bernoulli(expit(achieved_intercept + achieved_joint joint + achieved_smart
    (SMART criteria met))), goals independent given these. GAS level: the rounded latent
    GAS_MEAN + gas_joint joint + gas_smart (criteria met) + client progress + client
    deviation + goal deviation + rating noise, clipped to -2..2. The goal deviation is high
    where the goal was achieved (a normal quantile of the achievement draw), the client's
    progress is 0.2 GAS points per PHQ-9 point the client improved beyond what their exposure
    predicts; neither depends on any goal's predictors."""
    n, a_client, a_time = plan.x.size, schedule.a_client, schedule.a_time
    r = streams("goal_attainment")
    n_smart = details.smart.sum(axis=0)
    achieved_lp = eff.achieved_intercept + eff.achieved_joint * plan.joint
    u_goal = r.random((n, MAX_GOALS))
    achieved = (u_goal < _expit(achieved_lp + eff.achieved_smart * n_smart)) & plan.valid
    goal_dev = GAS_GOAL_SD * ndtri(1.0 - u_goal)
    client_dev = r.normal(0.0, GAS_CLIENT_SD, n)
    goal_part = GAS_MEAN + eff.gas_joint * plan.joint + eff.gas_smart * n_smart + goal_dev
    due = ((a_time % 4 == 0) | (a_time == schedule.last_attended[a_client])) & (a_time >= 2)
    g_client, g_time = a_client[due], a_time[due]
    progress = -GAS_PER_PHQ9 * latent.slope_deviation[g_client] * g_time
    gas_latent = (
        goal_part[g_client]
        + (progress + client_dev[g_client])[:, None]
        + r.normal(0.0, GAS_RATING_SD, (g_client.size, MAX_GOALS))
    )
    gas = np.clip(np.rint(gas_latent), -2, 2).astype(np.int64)
    rated = (
        plan.valid[g_client]
        & (plan.set_session[g_client] < g_time[:, None])
        & (r.random(gas.shape) >= ITEM_MISSING["gas"])
    )
    return _pack_values("gas", "client", g_client, g_time, gas, rated, M), achieved


def _goals_frame(
    design: _Design,
    plan: _GoalPlan,
    details: _GoalDetails,
    dropout: np.ndarray,
    achieved: np.ndarray,
    schedule: _Schedule,
) -> pd.DataFrame:
    """The goals table: revised (15 %), abandoned (more often by dropouts), achieved (drawn
    with the goal-level effects) or active."""
    goal_status = np.where(details.status_u < 0.15, 2, 0)
    abandon_p = np.where(dropout, 0.3, 0.06)[:, None]
    goal_status = np.where(details.abandon_u < abandon_p, 3, goal_status)
    goal_status = np.where(achieved, 1, goal_status)
    lo = np.maximum(plan.set_session, 1)
    span = schedule.last_attended[:, None] - lo + 1
    revised_at = lo + np.floor(details.revised_u * span)
    smart = details.smart
    gc, gg = np.nonzero(plan.valid)
    g_status = goal_status[gc, gg]
    return pd.DataFrame(
        {
            "client_id": _text(design.client_ids, gc),
            "goal_id": _text(GOAL_IDS, gg),
            "set_session": plan.set_session[gc, gg],
            "set_by": _text(SET_BY, plan.set_by[gc, gg]),
            "client_importance": details.client_importance[gc, gg].astype(np.int64),
            "therapist_importance": details.therapist_importance[gc, gg].astype(np.int64),
            "smart_specific": smart[0, gc, gg],
            "smart_measurable": smart[1, gc, gg],
            "smart_achievable": smart[2, gc, gg],
            "smart_relevant": smart[3, gc, gg],
            "smart_time_bound": smart[4, gc, gg],
            "status": _text(GOAL_STATUSES, g_status),
            "revised_session": _nullable(revised_at[gc, gg].astype(np.int64), g_status == 2),
        }
    )


def _clients_frame(design: _Design, end_code: np.ndarray) -> pd.DataFrame:
    n = design.client_ids.size
    therapist = design.therapist
    return pd.DataFrame(
        {
            "client_id": _text(design.client_ids, np.arange(n)),
            "therapist_id": _text(design.therapist_ids, therapist),
            "site_id": _text(design.site_ids, design.therapist_site[therapist]),
            "arm": _text(ARMS, (~design.collab).astype(np.int64)),
            "intake_year": design.intake_year.astype(np.int64),
            "age": design.age,
            "age_band": _text(AGE_BANDS, np.searchsorted(AGE_BAND_EDGES, design.age, "right")),
            "gender": _text(GENDERS, design.gender),
            "end_reason": _text(END_REASONS, end_code),
        }
    )


def _sessions_frame(client_ids: np.ndarray, schedule: _Schedule) -> pd.DataFrame:
    s_client, s_slot = schedule.s_client, schedule.s_slot
    s_attended = schedule.s_status == 0
    homework_m = schedule.homework_m
    homework = homework_m[s_client, s_slot] & s_attended
    return pd.DataFrame(
        {
            "client_id": _text(client_ids, s_client),
            "session_number": (s_slot + 1).astype(np.int64),
            "status": _text(STATUSES, schedule.s_status),
            "day": schedule.day_m[s_client, s_slot].astype(np.int64),
            "duration_min": _nullable(schedule.duration_m[s_client, s_slot], s_attended),
            "modality": _text(MODALITIES, schedule.modality_m[s_client, s_slot]),
            "homework_assigned": _nullable(homework_m[s_client, s_slot], s_attended),
            "homework_completion": np.where(
                homework, schedule.completion_m[s_client, s_slot], np.nan
            ),
            "goal_review": _nullable(schedule.review_m[s_client, s_slot], s_attended),
        }
    )


def write_study(study: SimulatedStudy, folder: str | Path, fmt: str = "csv") -> None:
    """Write the four tables as `<table>.<fmt>` and `truth.json` (sorted keys) into `folder`.

    CSV: UTF-8, header, comma-separated, `\\n` line ends, empty cell = missing, booleans
    `true`/`false`, integers (and whole-number values) without a decimal point, other numbers
    in their shortest exact form (0.75). Parquet: plain column types, no pandas metadata.
    Each file is written to a temporary file in the same folder and then renamed into place;
    a table file of the other format left over in the folder is removed, so the folder holds
    one study. The same study gives the same bytes.
    """
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"unknown study format {fmt!r}: use 'csv' or 'parquet'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    other = "parquet" if fmt == "csv" else "csv"
    for name in TABLES:
        frame = getattr(study, name)
        with atomic_path(folder / f"{name}.{fmt}") as tmp:
            if fmt == "csv":
                _write_csv(frame, tmp)
            else:
                _write_parquet(frame, tmp)
        (folder / f"{name}.{other}").unlink(missing_ok=True)
    write_json(folder / "truth.json", study.truth)


@dataclass
class SimulatedConsortium:
    """The studies of a simulated multi-site consortium, one per site, and their shared truth.

    `truth` holds the mean time x exposure effect, the between-site SD it was drawn with and
    each site's own effect (``site_effects``); every site's study carries its own truth too.
    """

    sites: dict[str, SimulatedStudy]
    truth: dict


def consortium_site_settings(
    n_sites: int = 3,
    n_clients: int = 200,
    n_therapists: int = 10,
    *,
    mean_effect: float = -0.25,
    between_site_sd: float = 0.05,
    site_intercept_sd: float = 1.0,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> dict[str, dict[str, Any]]:
    """The `simulate_study` settings of each site of a simulated consortium, by site name
    (``site_1``, ``site_2``, ...): its design, its own seed and, under ``effects``, its own
    time x exposure effect and mean PHQ-9 at intake (see `simulate_consortium`) with the
    `effects` every site shares. The config's ``consortia.<name>.simulate`` becomes one
    simulated study per site through this function.
    """
    if "growth_time_x_exposure" in effects:
        raise ConfigError(
            "simulate_consortium: give the sites' effect as mean_effect and between_site_sd, "
            "not growth_time_x_exposure"
        )
    if int(n_sites) < 1:
        raise ConfigError("n_sites must be at least 1")
    if not (between_site_sd >= 0 and site_intercept_sd >= 0):
        raise ConfigError("between_site_sd and site_intercept_sd must not be negative")
    base = _effects(effects)
    r = _Streams(int(seed))("consortium")
    site_effects = mean_effect + between_site_sd * r.standard_normal(int(n_sites))
    intercepts = base.growth_intercept + site_intercept_sd * r.standard_normal(int(n_sites))
    site_seeds = r.integers(0, 2**31 - 1, size=int(n_sites))
    return {
        f"site_{k + 1}": {
            "n_clients": int(n_clients),
            "n_therapists": int(n_therapists),
            "n_sites": 1,
            "max_sessions": int(max_sessions),
            "seed": int(site_seed),
            "effects": {
                **{name: float(value) for name, value in effects.items()},
                "growth_time_x_exposure": float(effect),
                "growth_intercept": float(intercept),
            },
        }
        for k, (effect, intercept, site_seed) in enumerate(
            zip(site_effects, intercepts, site_seeds, strict=True)
        )
    }


def simulate_consortium(
    n_sites: int = 3,
    n_clients: int = 200,
    n_therapists: int = 10,
    *,
    mean_effect: float = -0.25,
    between_site_sd: float = 0.05,
    site_intercept_sd: float = 1.0,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> SimulatedConsortium:
    """Draw a consortium of `n_sites` separate studies (sites ``site_1``, ``site_2``, ...).

    Site s has its own time x exposure effect g_s ~ N(`mean_effect`, `between_site_sd`^2)
    (PHQ-9 points per session per unit joint_goal_share, the `growth_time_x_exposure` of
    `simulate_study`) and its own mean PHQ-9 at intake, shifted by N(0, `site_intercept_sd`^2)
    from `growth_intercept`; each site is then an ordinary study of `n_clients` clients and
    `n_therapists` therapists (one site each) drawn with its own seed. This is the random-effects
    model a two-stage meta-analysis assumes: the pooled estimate targets `mean_effect` and its
    tau^2 targets `between_site_sd`^2. Other `effects` apply to every site. Each site's study
    is the one `consortium_site_settings` describes.
    """
    settings = consortium_site_settings(
        n_sites,
        n_clients,
        n_therapists,
        mean_effect=mean_effect,
        between_site_sd=between_site_sd,
        site_intercept_sd=site_intercept_sd,
        seed=seed,
        max_sessions=max_sessions,
        **effects,
    )
    sites = {
        name: simulate_study(**{k: v for k, v in site.items() if k != "effects"}, **site["effects"])
        for name, site in settings.items()
    }
    truth = {
        "design": {
            "seed": int(seed),
            "n_sites": int(n_sites),
            "n_clients_per_site": int(n_clients),
            "n_therapists_per_site": int(n_therapists),
            "max_sessions": int(max_sessions),
        },
        "outcome": "phq9",
        "exposure": "joint_goal_share",
        "term": "time:joint_goal_share",
        "mean_effect": float(mean_effect),
        "between_site_sd": float(between_site_sd),
        "site_intercept_sd": float(site_intercept_sd),
        "site_effects": {
            name: site["effects"]["growth_time_x_exposure"] for name, site in settings.items()
        },
        "site_intercepts": {
            name: site["effects"]["growth_intercept"] for name, site in settings.items()
        },
        "site_seeds": {name: site["seed"] for name, site in settings.items()},
        "units": "mean_effect, between_site_sd and site_effects: PHQ-9 points per session per "
        "unit joint_goal_share (the time x exposure term of the growth model); site_intercepts: "
        "mean PHQ-9 at intake",
    }
    return SimulatedConsortium(sites, truth)


def write_consortium(
    consortium: SimulatedConsortium, folder: str | Path, fmt: str = "csv"
) -> dict[str, Path]:
    """Write each site's study into `folder/<site>/` (see `write_study`) and the consortium's
    `truth.json` into `folder`; return the site folders by site name."""
    folder = Path(folder)
    paths = {}
    for name, study in consortium.sites.items():
        paths[name] = folder / name
        write_study(study, paths[name], fmt)
    write_json(folder / "truth.json", consortium.truth)
    return paths


# ----------------------------------------------------------------------------- helpers


class _Streams:
    """Independent random streams for each part of the model, all derived from one seed.

    Changing one part of the model leaves the draws of every other part as they were.
    """

    def __init__(self, seed: int):
        self._seed = int(seed)

    def __call__(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self._seed, *name.encode("ascii")])


def _effects(overrides: dict[str, Any]) -> Effects:
    known = {f.name for f in fields(Effects)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown simulation effect(s): {', '.join(unknown)}; "
            f"known effects: {', '.join(sorted(known))}"
        )
    return Effects(**{name: float(value) for name, value in overrides.items()})


def _check_design(seed: int, n: int, n_t: int, n_s: int, max_sessions: int, eff: Effects) -> None:
    if seed < 0:
        raise ConfigError("seed must be a non-negative integer")
    if n < 1:
        raise ConfigError("n_clients must be at least 1")
    if n_s < 1 or n_t < n_s:
        raise ConfigError("n_sites must be at least 1 and n_therapists at least n_sites")
    if max_sessions < 2:
        raise ConfigError("max_sessions must be at least 2")
    if not 0.0 < eff.dropout_rate < 1.0:
        raise ConfigError("dropout_rate must lie strictly between 0 and 1")
    if not 0.0 <= eff.therapist_variance_share < 1.0:
        raise ConfigError("therapist_variance_share must lie in [0, 1)")
    for name in ("p_joint_collaborative", "p_joint_usual_care"):
        if not 0.0 < getattr(eff, name) < 1.0:
            raise ConfigError(f"{name} must lie strictly between 0 and 1")
    for f in fields(Effects):
        if f.name.endswith("_sd") and not getattr(eff, f.name) >= 0:
            raise ConfigError(f"{f.name} must not be negative")


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _solve_intercept(lp: np.ndarray, rate: float) -> float:
    """The intercept alpha with mean(expit(alpha + lp)) = rate (Newton's method)."""
    alpha = float(np.log(rate / (1.0 - rate)) - np.mean(lp))
    for _ in range(100):
        p = _expit(alpha + lp)
        step = float(p.mean() - rate) / max(float(np.mean(p * (1.0 - p))), 1e-12)
        alpha -= step
        if abs(step) < 1e-12:
            break
    return alpha


def _pseudonyms(r: np.random.Generator, prefix: str, n: int, length: int) -> np.ndarray:
    """n distinct random IDs: `prefix` and `length` consonants, never a digit."""
    ids = np.empty(n, dtype=f"U{length + len(prefix)}")
    todo = np.arange(n)
    while todo.size:
        chars = ID_ALPHABET[r.integers(0, ID_ALPHABET.size, (todo.size, length))]
        ids[todo] = np.char.add(prefix, chars.view(f"U{length}").ravel())
        _, first = np.unique(ids, return_index=True)
        repeat = np.ones(n, bool)
        repeat[first] = False
        todo = np.flatnonzero(repeat)
    return ids


def _items(
    r: np.random.Generator,
    totals: np.ndarray,
    k: int,
    lo: int,
    hi: int,
    offsets: np.ndarray,
    noise_sd: float,
) -> np.ndarray:
    """Item responses (m x k, each in lo..hi) that sum to each latent total rounded into range."""
    m = totals.size
    target = np.clip(np.rint(totals), k * lo, k * hi).astype(np.int64)
    z = np.clip(totals[:, None] / k + offsets + r.normal(0.0, noise_sd, (m, k)), lo, hi)
    # Shift items in proportion to their room so that they sum to the target exactly.
    short = target - z.sum(axis=1)
    room = np.where(short[:, None] > 0, hi - z, z - lo)
    total_room = room.sum(axis=1)
    scale = np.divide(short, total_room, out=np.zeros(m), where=total_room > 0)
    z += scale[:, None] * room
    # Cumulative rounding in integer steps of 1/q keeps the sum and each item's range.
    q = 1024
    zq = np.clip(np.rint(z * q).astype(np.int64), lo * q, hi * q)
    excess = zq.sum(axis=1) - target * q
    room_q = np.where(excess[:, None] > 0, zq - lo * q, hi * q - zq)
    zq[np.arange(m), room_q.argmax(axis=1)] -= excess
    rounded = (np.cumsum(zq, axis=1) + q // 2) // q
    return np.diff(rounded, axis=1, prepend=0)


def _item_ranks(k: int) -> np.ndarray:
    """Where items 1..k fall when their labels are sorted as text ("1", "10", "11", "2", ...)."""
    labels = [str(j) for j in range(1, k + 1)]
    order = sorted(labels)
    return np.array([order.index(label) for label in labels], dtype=np.int64)


def _pack(
    r: np.random.Generator,
    instrument: str,
    rater: str,
    client: np.ndarray,
    time: np.ndarray,
    items: np.ndarray,
    max_sessions: int,
) -> np.ndarray:
    """Item responses as packed sort keys, leaving out a random share of items."""
    present = r.random(items.shape) >= ITEM_MISSING[instrument]
    return _pack_values(instrument, rater, client, time, items, present, max_sessions)


def _pack_values(
    instrument: str,
    rater: str,
    client: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    present: np.ndarray,
    max_sessions: int,
) -> np.ndarray:
    """One int64 per measure row holding client, session, group, item rank and value.

    Sorting the keys sorts the rows by (client_id, session_number, instrument, rater, item).
    """
    ranks = np.arange(values.shape[1]) if instrument == "gas" else _item_ranks(values.shape[1])
    head = (client.astype(np.int64) * (max_sessions + 1) + time) * len(GROUPS)
    head = (head + GROUPS.index((instrument, rater))) * ITEM_SLOTS
    key = (head[:, None] + ranks[None, :]) * VALUE_SLOTS + (values + 2)
    return key[present]


def _last_rating(client: np.ndarray, values: np.ndarray, rated: np.ndarray, n: int) -> np.ndarray:
    """Each goal's last rating (n x goals; -9 where never rated); rows run in session order."""
    last = np.full((n, values.shape[1]), -9, dtype=np.int64)
    row, goal = np.nonzero(rated)
    pair = client[row] * values.shape[1] + goal
    _, from_end = np.unique(pair[::-1], return_index=True)
    pick = pair.size - 1 - from_end
    last[client[row[pick]], goal[pick]] = values[row[pick], goal[pick]]
    return last


def _measures_frame(keys: list[np.ndarray], client_ids: np.ndarray, M: int) -> pd.DataFrame:
    key = np.concatenate(keys)
    keys.clear()
    key.sort()
    key, value = np.divmod(key, VALUE_SLOTS)
    value = value.astype(np.float64) - 2.0
    key, item_code = np.divmod(key, ITEM_SLOTS)
    item_code += (key % len(GROUPS)) * ITEM_SLOTS  # group * ITEM_SLOTS + item rank
    key, group = np.divmod(key, len(GROUPS))
    key, session = np.divmod(key, M + 1)
    item_labels = [""] * (len(GROUPS) * ITEM_SLOTS)
    for g, (instrument, _) in enumerate(GROUPS):
        k = GROUP_ITEMS[instrument]
        labels = GOAL_IDS if instrument == "gas" else sorted(str(j) for j in range(1, k + 1))
        item_labels[g * ITEM_SLOTS : g * ITEM_SLOTS + k] = labels
    data = {"client_id": _text(client_ids, key)}
    del key
    data["session_number"] = session
    data["instrument"] = _text([g[0] for g in GROUPS], group)
    data["rater"] = _text([g[1] for g in GROUPS], group)
    del group
    data["item"] = _text(item_labels, item_code)
    del item_code
    data["value"] = value
    data["phase"] = _text(["intake", "treatment"], (session > 0).view(np.int8))
    return pd.DataFrame(data)


def _text(labels: Any, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """labels[codes] as a pandas `str` array (arrow-backed), built without Python objects."""
    vocab = pa.array(np.asarray(labels, dtype=object), pa.large_string())
    return STR.construct_array_type()(pc.take(vocab, pa.array(np.asarray(codes))))


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A nullable boolean or Int64 array, missing where `present` is False."""
    if values.dtype == bool:
        return pd.arrays.BooleanArray(values.copy(), ~present)
    return pd.arrays.IntegerArray(values.astype(np.int64), ~present)


def _truth(
    *,
    design: dict[str, int],
    max_sessions: int,
    eff: Effects,
    collab: np.ndarray,
    x: np.ndarray,
    course: _Course,
    latent: _Latent,
    ratings: np.ndarray,
    rows: dict[str, int],
) -> dict:
    """truth.json: the design, every planted effect and what the drawn study realised."""
    return {
        "generator": "accord.simulate",
        **design,
        "max_sessions": max_sessions,
        "effects": {name: float(value) for name, value in asdict(eff).items()},
        "rows": rows,
        **_truth_exposure(eff, collab, x, course.dropout),
        **_truth_outcomes(eff, x, course, latent.var_client),
        **_truth_dropout(eff, course, latent),
        **_truth_goals(eff, ratings, latent),
    }


def _num(value: Any) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    return _num(values.mean()) if values.size else None


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return None
    return _num(np.corrcoef(a, b)[0, 1])


def _truth_exposure(
    eff: Effects, collab: np.ndarray, x: np.ndarray, dropout: np.ndarray
) -> dict[str, Any]:
    """The arms and the exposure."""
    x_gap = x[collab].mean() - x[~collab].mean() if collab.any() and not collab.all() else np.nan
    return {
        "arms": {
            "labels": list(ARMS),
            "allocation": "1:1, randomised per client",
            "n": {ARMS[0]: int(collab.sum()), ARMS[1]: int((~collab).sum())},
            "p_joint_goal": {ARMS[0]: eff.p_joint_collaborative, ARMS[1]: eff.p_joint_usual_care},
            "joint_goal_share_mean": {ARMS[0]: _mean(x[collab]), ARMS[1]: _mean(x[~collab])},
            "dropout_rate": {ARMS[0]: _mean(dropout[collab]), ARMS[1]: _mean(dropout[~collab])},
            "time_x_arm": _num(eff.growth_time_x_exposure * x_gap),
            "units": "time_x_arm: PHQ-9 points per session, collaborative minus usual_care, "
            "implied by time_x_exposure and the arms' realised difference in joint_goal_share",
        },
        "exposure": {
            "name": "joint_goal_share",
            "definition": "share of the client's goals with set_by = joint",
            "mean": _mean(x),
            "sd": _num(x.std()),
        },
    }


def _truth_outcomes(
    eff: Effects, x: np.ndarray, course: _Course, var_client: float
) -> dict[str, Any]:
    """The PHQ-9 growth model, the lagged within-person alliance and the alliance."""
    via_alliance = eff.alliance_slope * eff.alliance_exposure
    alliance_level = course.alliance_level
    return {
        "growth": {
            "outcome": "phq9",
            "scale": "total",
            "time": "session_number",
            "exposure": "joint_goal_share",
            "intercept": eff.growth_intercept,
            "exposure_at_intake": 0.0,
            "time_slope": eff.growth_time,
            "time_x_exposure": eff.growth_time_x_exposure,
            "time_x_exposure_direct": _num(eff.growth_time_x_exposure - via_alliance),
            "time_x_exposure_via_alliance": _num(via_alliance),
            "intake_sd": eff.intake_sd,
            "client_intercept_sd": _num(np.sqrt(var_client)),
            "client_slope_sd": eff.client_slope_sd,
            "residual_sd": eff.residual_sd,
            "units": "PHQ-9 total points; time_slope: points per session at joint_goal_share 0; "
            "time_x_exposure: points per session per unit joint_goal_share, the total effect "
            "that phq9 ~ session_number * joint_goal_share estimates (direct + via_alliance)",
        },
        "lagged": {
            "outcome": "phq9",
            "predictor": "wai_sr",
            "within_alliance": eff.lagged_within_alliance,
            "units": "PHQ-9 points at the next attended session per WAI-SR point (item mean) of "
            "the within-person alliance deviation at this session; the client's alliance "
            "level acts on the PHQ-9 slope instead (alliance.slope_effect)",
        },
        "alliance": {
            "instrument": "wai_sr",
            "mean_at_session_1": eff.alliance_mean,
            "exposure_effect": eff.alliance_exposure,
            "between_sd": eff.alliance_between_sd,
            "therapist_sd": eff.alliance_therapist_sd,
            "within_sd": eff.alliance_within_sd,
            "trend_per_session": eff.alliance_trend,
            "slope_effect": eff.alliance_slope,
            "r_exposure_realised": _corr(x, alliance_level),
            "units": "WAI-SR item-mean points; exposure_effect per unit joint_goal_share; "
            "slope_effect: PHQ-9 points per session per WAI-SR point of the client's level",
        },
    }


def _truth_dropout(eff: Effects, course: _Course, latent: _Latent) -> dict[str, Any]:
    """Dropout, the therapist variance, homework and measurement."""
    dropout, dropout_alpha = course.dropout, course.dropout_alpha
    var_therapist, v = latent.var_therapist, latent.v
    early_alliance = course.alliance_level + course.early_dip
    sd_early = early_alliance.std()
    alliance_d = (
        (early_alliance[~dropout].mean() - early_alliance[dropout].mean()) / sd_early
        if dropout.any() and not dropout.all() and sd_early > 0
        else np.nan
    )
    return {
        "dropout": {
            "definition": "end_reason",
            "rate": eff.dropout_rate,
            "rate_realised": _mean(dropout),
            "intercept": _num(dropout_alpha),
            "log_odds_exposure": eff.dropout_log_odds_exposure,
            "log_odds_alliance": eff.dropout_log_odds_alliance,
            "log_odds_alliance_level": eff.dropout_log_odds_alliance_level,
            "alliance_d_realised": _num(alliance_d),
            "ignorable_for_growth": eff.dropout_log_odds_alliance_level == 0.0,
            "units": "log-odds per unit joint_goal_share; log_odds_alliance per WAI-SR point of "
            "the client's early within-person alliance (mean deviation from their own level over "
            "the first three appointments: early dips and ruptures); log_odds_alliance_level per "
            "WAI-SR point of the client's stable alliance level, which also steepens the PHQ-9 "
            "slope, so a non-zero value makes dropout informative for growth models; "
            "alliance_d_realised: early alliance (level plus early dip) of non-dropouts minus "
            "dropouts, in SDs",
        },
        "therapist": {
            "variance_share": eff.therapist_variance_share,
            "intercept_variance": _num(var_therapist),
            "intercept_variance_realised": _num(v.var()),
            "slope_sd": eff.therapist_slope_sd,
            "definition": "therapist random-intercept variance of PHQ-9 over the total PHQ-9 "
            "variance across all assessments (intake and attended sessions); slope_sd: the "
            "therapist SD of the PHQ-9 slope (points per session), which makes therapists "
            "differ in post scores adjusted for intake",
        },
        "homework": {
            "completion_log_odds_exposure": HOMEWORK_EXPOSURE,
            "effect_on_outcome": 0.0,
        },
        "measurement": {
            "item_missing": dict(ITEM_MISSING),
            "form_missing": dict(FORM_MISSING),
        },
    }


def _truth_goals(eff: Effects, ratings: np.ndarray, latent: _Latent) -> dict[str, Any]:
    """The congruence surface, the goal-level effects and the check-in effect."""
    b = dict(zip(("C", "T", "C^2", "C*T", "T^2"), _surface_coefficients(eff), strict=True))
    smart = {f"smart_{c}": eff.gas_smart for c in SMART_CRITERIA}
    smart_log_odds = {f"smart_{c}": eff.achieved_smart for c in SMART_CRITERIA}
    neutral = {"importance_agreement": 0.0, "set_session": 0.0}
    return {
        "congruence": {
            "instrument": "wai_sr",
            "scale": "goal",
            "early_sessions": SURFACE_EARLY_SESSIONS,
            "midpoint": SURFACE_MIDPOINT,
            "outcome": "phq9",
            "b": b,
            "a1": b["C"] + b["T"],
            "a2": b["C^2"] + b["C*T"] + b["T^2"],
            "a3": b["C"] - b["T"],
            "a4": b["C^2"] - b["C*T"] + b["T^2"],
            "clients_with_both_ratings": int(np.isfinite(ratings).all(axis=1).sum()),
            "units": "PHQ-9 points added to every assessment after intake (so to the post "
            "score adjusted for intake) per point of the client's (C) and the therapist's (T) "
            "early WAI-SR Goal rating, centred on the midpoint: the mean Goal score over the "
            "first sessions each rater scored, as the congruence model forms it. The ratings "
            "also reach PHQ-9 through the alliance (alliance_slope, alliance_exposure, "
            "lagged_within_alliance, dropout_log_odds_alliance): a congruence fit estimates "
            "a1..a4 alone where those are 0",
        },
        "goal_attainment": {
            "gas_level": {
                "set_by[joint]": eff.gas_joint,
                "set_by[therapist]": 0.0,
                **smart,
                **neutral,
            },
            "achieved": {
                "intercept": eff.achieved_intercept,
                "set_by[joint]": eff.achieved_joint,
                "set_by[therapist]": 0.0,
                **smart_log_odds,
                **neutral,
            },
            "units": "gas_level: GAS points (-2..2) at the goal's last rating per predictor "
            "(goals set by the client are the reference; each SMART criterion met); achieved: "
            "log-odds of status achieved, goals independent given the predictors",
        },
        "check_in": {
            "effect": eff.check_in_effect,
            "off_track_z": OFF_TRACK_Z,
            "sessions_moved": latent.check_ins,
            "units": "PHQ-9 points at the first attended session after a goal review at the "
            "session that follows an off-track session (assessment noise above the upper limit "
            "of the central 80 % band)",
        },
    }


# ----------------------------------------------------------------------------- writing


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    columns = [
        col.cast(pa.string()) if pa.types.is_large_string(col.type) else col
        for col in table.columns
    ]
    table = pa.table(columns, names=table.column_names)
    pq.write_table(table, path, compression="zstd", store_schema=False)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` as CSV, a block of rows at a time.

    Within a block each column is encoded as codes into a vocabulary of cell texts; the cells
    are gathered into fixed-width rows padded with NUL bytes, and the padding is dropped.
    """
    names = [str(name) for name in frame.columns]
    with open(path, "wb") as handle:
        handle.write((",".join(_csv_cell(name) for name in names) + "\n").encode("utf-8"))
        for start in range(0, len(frame), CSV_BLOCK_ROWS):
            block = frame.iloc[start : start + CSV_BLOCK_ROWS]
            parts = []
            for k, name in enumerate(names):
                codes, vocab = _column_codes(block[name])
                end = "\n" if k == len(names) - 1 else ","
                parts.append((_cell_table(vocab, end, name), codes))
            row = np.dtype(
                {
                    "names": [f"c{k}" for k in range(len(parts))],
                    "formats": [cells.dtype for cells, _ in parts],
                    "offsets": np.cumsum([0] + [c.dtype.itemsize for c, _ in parts[:-1]]).tolist(),
                }
            )
            rows = np.empty(len(block), row)
            for k, (cells, codes) in enumerate(parts):
                rows[f"c{k}"] = np.take(cells, np.where(codes < 0, cells.size - 1, codes))
            data = rows.view(np.uint8)
            handle.write(memoryview(data[data != 0]))


def _cell_table(vocab: list[str], end: str, name: str) -> np.ndarray:
    """The cells of a vocabulary (and a last, empty one for missing) as NUL-padded bytes."""
    cells = [(_csv_cell(text) + end).encode("utf-8") for text in vocab] + [end.encode()]
    if any(b"\x00" in cell for cell in cells):
        raise ConfigError(f"column {name!r} holds a NUL character, which CSV cannot carry")
    width = max(len(cell) for cell in cells)
    return np.array(cells, dtype=f"S{width}").view(f"V{width}")


def _column_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 = missing) into a vocabulary of cell texts for one column."""
    dtype = column.dtype
    missing = column.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        codes = column.to_numpy(dtype=bool, na_value=False).astype(np.int64)
        codes[missing] = -1
        return codes, ["false", "true"]
    if pd.api.types.is_integer_dtype(dtype):
        values = column.to_numpy(dtype=np.int64, na_value=0)
        present = values[~missing]
        low = int(present.min()) if present.size else 0
        high = int(present.max()) if present.size else 0
        if high - low <= 4 * len(values) + 64:
            codes = values - low
            vocab = [str(v) for v in range(low, high + 1)]
        else:
            codes, uniques = pd.factorize(values)
            vocab = [str(int(v)) for v in uniques]
        codes[missing] = -1
        return codes, vocab
    if pd.api.types.is_float_dtype(dtype):
        codes, uniques = pd.factorize(column.to_numpy(dtype=np.float64, na_value=np.nan))
        return codes, [_format_number(v) for v in uniques]
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        encoded = pc.dictionary_encode(pa.chunked_array([pa.array(column)]).combine_chunks())
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return codes, encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(column)
    return codes, [_format_value(v) for v in uniques]


def _format_value(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _format_number(value)
    return str(value)


def _format_number(value: float) -> str:
    """Whole numbers without a decimal point; others in their shortest exact form."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _csv_cell(text: str) -> str:
    """Quote a cell only where RFC 4180 needs it."""
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text

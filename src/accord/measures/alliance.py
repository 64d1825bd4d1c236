"""Alliance per client: early and mean level, slope, ruptures and repairs, discrepancy, SRS alerts.

- early_alliance: mean of the first 3 assessed sessions (a choice; the number is a setting).
- alliance_slope: ordinary least-squares slope of alliance on session number (2 or more points).
- ruptures: an assessed session whose alliance falls at least k of the client's own SDs (sample
  SD over all the client's assessed sessions) below the previous assessed session; k = 1 (Strauss
  et al. 2006) and k = 2 (Stiles et al. 2004). A rupture is repaired when the alliance is back to
  at least its pre-rupture level (the previous session's value) within the next 3 assessed
  sessions (a choice); a rupture with no later assessment counts as not repaired. Counts are NA
  for a client with fewer than 2 assessments.
- alliance_discrepancy: mean of client minus therapist rating over sessions both rated.
- srs_alerts: sessions with SRS below 36 or 1 point or more below the client's previous SRS
  (OpenFIT alert rules; Duncan, Miller et al. 2003 for the SRS).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from accord.measures.panel import ClientSeries, ScoreTable, nullable_int

#: Tolerance for comparing scores that are sums or means of item responses.
EPS = 1e-9


def rupture_column(k: float, repaired: bool = False) -> str:
    """Column name of the rupture count for k SDs: `ruptures_1sd`, `ruptures_repaired_2sd`."""
    return f"ruptures_{'repaired_' if repaired else ''}{k:g}sd"


def ruptures(series: ClientSeries, k: float, window: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry rupture and repaired flags for one client-ordered alliance series."""
    sd = series.std()[series.code]
    previous = series.shift(1)
    with np.errstate(invalid="ignore"):
        rupture = (sd > 0) & (previous - series.value >= k * sd - EPS)
        repaired = np.zeros(len(series), dtype=bool)
        for step in range(1, window + 1):
            repaired |= series.shift(-step) >= previous - EPS
    return rupture, rupture & repaired


def slope(series: ClientSeries) -> np.ndarray:
    """Per-client OLS slope of the values on session number; NaN below 2 distinct sessions."""
    x = series.session.astype(np.float64)
    dx = x - series.mean(x)[series.code]
    dy = series.value - series.mean()[series.code]
    sxx = series.total(dx * dx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((series.count >= 2) & (sxx > 0), series.total(dx * dy) / sxx, np.nan)


def discrepancy(client: ClientSeries, therapist: ClientSeries) -> np.ndarray:
    """Per-client mean of client minus therapist rating over the sessions both rated."""
    top = int(max(client.session.max(initial=0), therapist.session.max(initial=0))) + 1
    _, ci, ti = np.intersect1d(
        client.code * top + client.session,
        therapist.code * top + therapist.session,
        return_indices=True,
    )
    diff = client.value[ci] - therapist.value[ti]
    count = np.bincount(client.code[ci], minlength=client.n_clients)
    total = np.bincount(client.code[ci], weights=diff, minlength=client.n_clients)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def srs_alerts(series: ClientSeries, threshold: float = 36, drop: float = 1) -> np.ndarray:
    """Per-client count of SRS alerts (NaN for a client without SRS scores)."""
    with np.errstate(invalid="ignore"):
        alert = (series.value < threshold) | (series.shift(1) - series.value >= drop - EPS)
    return np.where(series.count > 0, series.n(alert), np.nan)


def alliance_measures(
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    *,
    instrument: str = "wai_sr",
    scale: str = "total",
    rater: str = "client",
    early_sessions: int = 3,
    rupture_sds: Sequence[float] = (1, 2),
    repair_window: int = 3,
    srs_instrument: str = "srs",
    srs_threshold: float = 36,
    srs_drop: float = 1,
) -> pd.DataFrame:
    """Alliance measures, one row per client in `client_ids` (index: client_id).

    Columns: early_alliance, mean_alliance, alliance_slope, ruptures_<k>sd and
    ruptures_repaired_<k>sd for each k, alliance_discrepancy, srs_alerts.
    """
    scores = ScoreTable.of(scores, client_ids)
    series = ClientSeries.from_scores(scores, client_ids, instrument, scale, rater)
    assessed = series.count >= 2
    out = pd.DataFrame(index=client_ids)
    out["early_alliance"] = series.mean(where=series.pos < early_sessions)
    out["mean_alliance"] = series.mean()
    out["alliance_slope"] = slope(series)
    for k in rupture_sds:
        rupture, repaired = ruptures(series, k, repair_window)
        counts = np.where(assessed, series.n(rupture), np.nan)
        fixed = np.where(assessed, series.n(repaired), np.nan)
        out[rupture_column(k)] = nullable_int(counts)
        out[rupture_column(k, repaired=True)] = nullable_int(fixed)
    by_client = (
        series
        if rater == "client"
        else ClientSeries.from_scores(scores, client_ids, instrument, scale, "client")
    )
    by_therapist = ClientSeries.from_scores(scores, client_ids, instrument, scale, "therapist")
    out["alliance_discrepancy"] = discrepancy(by_client, by_therapist)
    srs = ClientSeries.from_scores(scores, client_ids, srs_instrument, "total", "client")
    alerts = srs_alerts(srs, srs_threshold, srs_drop)
    out["srs_alerts"] = nullable_int(alerts)
    return out

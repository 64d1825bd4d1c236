"""What the per-client measures need from the whole study, gathered from partitions of clients.

Almost every measure is a client's own; a few numbers are taken over all clients:

- the grand mean of the client means of the panel's centred series (`alliance`,
  `goal_alliance_client`; `accord.measures.panel.within_between`);
- SD_pre, the sample SD of the clients' first scores on each outcome instrument, and n_pre
  (`accord.measures.change`);
- which (instrument, scale, rater) are scored in the study: the panel's score columns, and the
  outcome instruments when the settings leave them to the study (an instrument counts when its
  totals by the outcome rater are scored);
- whether the study's goals table has rows (`accord.measures.goalsetting`: a client without
  goals then has n_goals 0).

`measure_statistics` takes these from one partition (counts and exact sums,
`accord.measures.exact`), `combine_statistics` adds partitions up exactly, in any order, so a
study built in any number of partitions has the scalars of the one-job build to the bit (the
one-job build is one partition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from accord.measures.change import baseline_moments
from accord.measures.exact import Moments
from accord.measures.panel import ClientSeries, ScoreTable, client_index

ScaleKey = tuple[str, str, str]


@dataclass(frozen=True)
class MeasureStatistics:
    """The study-wide inputs of the per-client measures, of one partition or of the study.

    n_clients: clients. score_groups: the scored (instrument, scale, rater), sorted.
    baselines: per instrument, the moments of its first totals by the outcome rater.
    client_means: per centred panel series, the moments of the client means.
    has_goals: whether the goals table has rows.
    """

    n_clients: int = 0
    score_groups: tuple[ScaleKey, ...] = ()
    baselines: Mapping[str, Moments] = field(default_factory=dict)
    client_means: Mapping[str, Moments] = field(default_factory=dict)
    has_goals: bool = False

    def grand_means(self) -> dict[str, float]:
        """The grand mean of client means of each centred series (NaN without values)."""
        return {name: moments.mean() for name, moments in self.client_means.items()}

    def baseline(self, instrument: str) -> Moments:
        """The moments of an instrument's first scores (none: no client has a score)."""
        return self.baselines.get(instrument, Moments())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "n_clients": self.n_clients,
            "score_groups": [list(key) for key in self.score_groups],
            "baselines": {key: m.to_dict() for key, m in sorted(self.baselines.items())},
            "client_means": {key: m.to_dict() for key, m in sorted(self.client_means.items())},
            "has_goals": self.has_goals,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasureStatistics:
        return cls(
            n_clients=int(data["n_clients"]),
            score_groups=tuple(tuple(key) for key in data["score_groups"]),  # type: ignore[misc]
            baselines={k: Moments.from_dict(v) for k, v in data["baselines"].items()},
            client_means={k: Moments.from_dict(v) for k, v in data["client_means"].items()},
            has_goals=bool(data["has_goals"]),
        )


def measure_statistics(
    clients: pd.DataFrame,
    goals: pd.DataFrame | None,
    scores: pd.DataFrame | ScoreTable | None,
    *,
    outcome_rater: str,
    centred: Mapping[str, ScaleKey],
) -> MeasureStatistics:
    """The statistics of the clients in `clients` (a partition of a study, or all of it).

    `outcome_rater` is whose totals are outcomes; `centred` names the panel's centred series
    and their scales (`accord.measures.panel.panel_series`).
    """
    client_ids = client_index(clients)
    table = ScoreTable.of(scores, client_ids)
    baselines = {
        instrument: baseline_moments(
            ClientSeries.from_scores(table, client_ids, instrument, "total", rater).first()
        )
        for instrument, scale, rater in table.groups
        if scale == "total" and rater == outcome_rater
    }
    client_means = {
        name: Moments.of(ClientSeries.from_scores(table, client_ids, *combo).mean())
        for name, combo in centred.items()
    }
    return MeasureStatistics(
        n_clients=len(client_ids),
        score_groups=tuple(sorted(table.groups)),
        baselines=baselines,
        client_means=client_means,
        has_goals=goals is not None and not goals.empty,
    )


def combine_statistics(parts: Sequence[MeasureStatistics]) -> MeasureStatistics:
    """The study's statistics from its partitions' (exact, in any order)."""
    if not parts:
        raise ValueError("combine_statistics needs at least one partition")
    return MeasureStatistics(
        n_clients=sum(part.n_clients for part in parts),
        score_groups=tuple(sorted({key for part in parts for key in part.score_groups})),
        baselines=_combined(part.baselines for part in parts),
        client_means=_combined(part.client_means for part in parts),
        has_goals=any(part.has_goals for part in parts),
    )


def _combined(maps: Iterable[Mapping[str, Moments]]) -> dict[str, Moments]:
    found: dict[str, list[Moments]] = {}
    for moments in maps:
        for key, value in moments.items():
            found.setdefault(key, []).append(value)
    return {key: Moments.combine(values) for key, values in sorted(found.items())}

"""How much memory each job of the workflow needs, so jobs that run at once fit the machine.

Every rule of a study declares the memory its job needs (Snakemake's ``mem_mb`` resource),
estimated from the study's number of clients: an interpreter floor plus a rate per 1,000
clients of the job (a partition's clients for a partition's job), with a margin. The rates
were measured with `make bench` at a million clients in 20 partitions (the jobs' peak
resident memory from their benchmark files). `accord run` gives Snakemake the budget all
running jobs share (``--resources mem_mb=``, `memory_budget_mb`), so two heavy model fits
of a large study never run side by side on a machine they would overfill, while the jobs of a
small study, needing little, all run at once. A job needing more than the budget is given the
budget and runs alone.

On a cluster the scheduler places the jobs, and the profile's ``set-resources`` sizes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# MB of any job: the interpreter with pandas, pyarrow and the rest of accord imported.
FLOOR_MB = 400
# Measured peaks are multiplied by this.
MARGIN = 1.15
# MB per 1,000 clients of a job, by rule: measured at a million clients in 20 partitions
# (validate_partition 3,121 MB for 50,000 clients: 56 per 1,000 with the floor; the gathers and
# the models count every client). A rule run once per partition counts its partition's clients;
# a gather of partitions counts the study's. Rules not listed need the floor. A rate is lowered
# only after a whole run at a million clients measures it lower: the floor is not every job's
# fixed cost (at 100,000 clients describe_missingness peaks at 1,366 MB), so a rate read off a
# million clients alone would under-declare smaller studies.
RATE_MB_PER_1000: Mapping[str, float] = {
    "validate_partition": 56.0,
    "validate_study": 6.4,
    "score_partition": 40.0,
    "score_measures": 7.3,
    "measures_statistics": 18.0,
    "build_partition": 20.0,
    "build_measures": 3.4,
    "plan_models": 5.0,
    "fit_model": 4.6,
    "bootstrap_model": 5.0,
    "describe_missingness": 8.3,
    "render_report": 8.4,
}
# A model's job by its kind, where it needs more than fit_model's rate: the mixed models, the
# goal models and the logistic GEE of getting back on track. Snakemake's benchmark samples a
# job's memory now and then, so two runs of the same job can differ (goal_attainment_achieved:
# 4,710 and 9,318 MB at a million clients); each rate covers the larger of two whole runs.
FIT_MODEL_RATE_BY_KIND: Mapping[str, float] = {
    "growth": 6.7,
    "lrt": 6.0,
    "lagged": 5.7,
    "ancova_mice": 5.5,
    "goal_congruence": 5.6,
    "goal_attainment": 7.8,
    "not_on_track": 6.1,
}
# Rules run once per partition of clients.
PARTITION_RULES = frozenset(
    {"validate_partition", "score_partition", "measures_statistics", "build_partition"}
)
# With one partition the one job does a partition's work on every client.
ONE_JOB_RATE: Mapping[str, str] = {
    "validate_study": "validate_partition",
    "score_measures": "score_partition",
    "build_measures": "build_partition",
}
# `performance.memory_mb: auto` lets the jobs share this part of the machine's memory.
AUTO_SHARE = 2 / 3


def job_memory_mb(rule: str, n_clients: int, partitions: int = 1, kind: str | None = None) -> int:
    """The memory (MB) a job of `rule` needs in a study of `n_clients` clients validated in
    `partitions` partitions; for fit_model, `kind` is the model's kind (module docstring)."""
    name = ONE_JOB_RATE.get(rule, rule) if partitions == 1 else rule
    rate = RATE_MB_PER_1000.get(name, 0.0)
    if rule == "fit_model" and kind in FIT_MODEL_RATE_BY_KIND:
        rate = FIT_MODEL_RATE_BY_KIND[kind]
    clients = n_clients
    if rule in PARTITION_RULES:
        clients = math.ceil(n_clients / max(partitions, 1))
    return math.ceil(MARGIN * (FLOOR_MB + rate * clients / 1000))


def memory_budget_mb(config: Mapping[str, Any]) -> int:
    """The memory (MB) all running jobs share: ``performance.memory_mb``, or with ``auto``
    (the default) two thirds of this machine's memory."""
    setting = config.get("performance", {}).get("memory_mb", "auto")
    if setting != "auto":
        return int(setting)
    import psutil

    return int(psutil.virtual_memory().total / 2**20 * AUTO_SHARE)

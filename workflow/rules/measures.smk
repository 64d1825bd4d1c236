# Scores, reliability, per-client measures and the session panel; a study validated in
# partitions of clients (performance.partitions) builds its measures in the same partitions:
# each partition's statistics, each partition built with the study's scalars, gathered by
# build_measures.


rule score_measures:
    input:
        measures="results/{study}/validated/measures.parquet",
        goals="results/{study}/validated/goals.parquet",
    output:
        scores="results/{study}/scores.parquet",
        reliability="results/{study}/reliability.csv",
        disagreements="results/{study}/validation/total_disagreements.csv",
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/score_measures.log",
    script:
        "../scripts/score_measures.py"


rule build_measures:
    input:
        unpack(measures_inputs),
    output:
        client_measures="results/{study}/client_measures.parquet",
        session_panel="results/{study}/session_panel.parquet",
        metadata="results/{study}/measures_metadata.json",
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/build_measures.log",
    script:
        "../scripts/build_measures.py"


# A partition's scores: the study's scores of its clients (until scoring runs in partitions).
rule partition_scores:
    input:
        scores="results/{study}/scores.parquet",
    output:
        scores=temp("results/{study}/partitions/scores_{part}.parquet"),
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/partition_scores_{part}.log",
    params:
        part="{part}",
        partitions=partition_count,
    script:
        "../scripts/partition_scores.py"


rule measures_statistics:
    input:
        part="results/{study}/partitions/validated_{part}",
        scores="results/{study}/partitions/scores_{part}.parquet",
    output:
        statistics=temp("results/{study}/partitions/measures_statistics_{part}.json"),
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/measures_statistics_{part}.log",
    script:
        "../scripts/measures_statistics.py"


rule build_partition:
    input:
        part="results/{study}/partitions/validated_{part}",
        scores="results/{study}/partitions/scores_{part}.parquet",
        statistics=measures_statistics,
    output:
        part=temp(directory("results/{study}/partitions/measures_{part}")),
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/build_partition_{part}.log",
    script:
        "../scripts/build_partition.py"

# Scores, reliability, per-client measures and the session panel.


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
        clients="results/{study}/validated/clients.parquet",
        sessions="results/{study}/validated/sessions.parquet",
        goals="results/{study}/validated/goals.parquet",
        scores="results/{study}/scores.parquet",
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

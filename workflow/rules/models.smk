# Models linking collaborative goal-setting to outcomes; one job per model.


rule fit_growth:
    input:
        session_panel="results/{study}/session_panel.parquet",
        client_measures="results/{study}/client_measures.parquet",
    output:
        coefficients="results/{study}/models/growth/coefficients.csv",
        diagnostics="results/{study}/models/growth/diagnostics.json",
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/fit_growth.log",
    script:
        "../scripts/fit_growth.py"


rule gather_models:
    input:
        coefficients=["results/{study}/models/growth/coefficients.csv"],
        diagnostics=["results/{study}/models/growth/diagnostics.json"],
    output:
        coefficients="results/{study}/models/coefficients.csv",
        diagnostics="results/{study}/models/diagnostics.json",
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/gather_models.log",
    script:
        "../scripts/gather_models.py"

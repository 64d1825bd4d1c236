# Models linking collaborative goal-setting to outcomes; one job per model of the study's plan.
# plan_models checks every configured model against what the study has; a model that does not
# apply gets no job (its reason is in plan.json), one that cannot be estimated records why.
# A model with a bootstrap draws its replicates in analysis.bootstrap_chunks jobs
# (bootstrap_model) and pools them in its own job (fit_model); with one chunk, fit_model
# draws them itself.


rule bootstrap_model:
    input:
        session_panel="results/{study}/session_panel.parquet",
        client_measures="results/{study}/client_measures.parquet",
    output:
        replicates="results/{study}/models/{model}/bootstrap/chunk_{chunk}.parquet",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/bootstrap_model/{model}/chunk_{chunk}.benchmark.tsv",
    resources:
        mem_mb=job_memory("bootstrap_model"),
    log:
        "logs/{study}/bootstrap_model/{model}/chunk_{chunk}.log",
    wildcard_constraints:
        chunk=r"\d+",
    params:
        model="{model}",
        chunk="{chunk}",
        chunks=bootstrap_chunks,
        settings=model_settings,
    script:
        "../scripts/bootstrap_model.py"


checkpoint plan_models:
    input:
        session_panel="results/{study}/session_panel.parquet",
        client_measures="results/{study}/client_measures.parquet",
    output:
        plan="results/{study}/models/plan.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/plan_models.benchmark.tsv",
    resources:
        mem_mb=job_memory("plan_models"),
    log:
        "logs/{study}/plan_models.log",
    params:
        settings=plan_settings,
    script:
        "../scripts/plan_models.py"


rule fit_model:
    input:
        unpack(model_tables),
        session_panel="results/{study}/session_panel.parquet",
        client_measures="results/{study}/client_measures.parquet",
        plan="results/{study}/models/plan.json",
        replicates=bootstrap_replicates,
    output:
        coefficients="results/{study}/models/{model}/coefficients.csv",
        diagnostics="results/{study}/models/{model}/diagnostics.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/fit_model/{model}.benchmark.tsv",
    resources:
        mem_mb=job_memory("fit_model"),
    log:
        "logs/{study}/fit_model/{model}.log",
    params:
        model="{model}",
        settings=model_settings,
    script:
        "../scripts/fit_model.py"


rule gather_models:
    input:
        unpack(planned_model_results),
    output:
        coefficients="results/{study}/models/coefficients.csv",
        diagnostics="results/{study}/models/diagnostics.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/gather_models.benchmark.tsv",
    resources:
        mem_mb=job_memory("gather_models"),
    log:
        "logs/{study}/gather_models.log",
    script:
        "../scripts/gather_models.py"


# What a site shares with a consortium: the gathered results with counts of fewer than
# min_cell clients withheld (accord.core.disclosure.shareable_record). Built on request, and for
# a consortium: two-stage pooling reads a local study's results only from here.
rule share_models:
    input:
        coefficients="results/{study}/models/coefficients.csv",
        diagnostics="results/{study}/models/diagnostics.json",
    output:
        coefficients="results/{study}/shared/coefficients.csv",
        diagnostics="results/{study}/shared/diagnostics.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/share_models.benchmark.tsv",
    resources:
        mem_mb=job_memory("share_models"),
    log:
        "logs/{study}/share_models.log",
    script:
        "../scripts/share_models.py"


rule describe_missingness:
    input:
        session_panel="results/{study}/session_panel.parquet",
        client_measures="results/{study}/client_measures.parquet",
    output:
        by_session="results/{study}/models/missing_by_session.csv",
        vs_exposure="results/{study}/models/missingness_vs_exposure.csv",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/describe_missingness.benchmark.tsv",
    resources:
        mem_mb=job_memory("describe_missingness"),
    log:
        "logs/{study}/describe_missingness.log",
    script:
        "../scripts/describe_missingness.py"

# Multi-site studies: pool the sites of each consortium (two-stage), refit the growth model on
# the local sites' rows where allowed (one-stage), and write the pooled report. The consortia
# and the input functions are in common.smk.


rule pool_sites:
    input:
        unpack(consortium_site_results),
    output:
        pooled="results/consortia/{consortium}/pooled.csv",
        sites="results/consortia/{consortium}/sites.csv",
        record="results/consortia/{consortium}/pooling.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/consortia/{consortium}/pool_sites.benchmark.tsv",
    log:
        "logs/consortia/{consortium}/pool_sites.log",
    params:
        consortium="{consortium}",
        settings=consortium_settings,
    script:
        "../scripts/pool_sites.py"


rule fit_one_stage:
    input:
        unpack(consortium_site_rows),
    output:
        coefficients="results/consortia/{consortium}/one_stage.csv",
        diagnostics="results/consortia/{consortium}/one_stage.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/consortia/{consortium}/fit_one_stage.benchmark.tsv",
    log:
        "logs/consortia/{consortium}/fit_one_stage.log",
    params:
        consortium="{consortium}",
        models=one_stage_models,
    script:
        "../scripts/fit_one_stage.py"


rule render_pooled_report:
    input:
        unpack(pooled_report_inputs),
    output:
        report=report(
            "reports/consortia/{consortium}/pooled.html",
            caption="../report/pooled_report.rst",
            category="Pooled report",
            labels={"consortium": "{consortium}"},
        ),
        forest_svg="reports/consortia/{consortium}/forest.svg",
        forest_png="reports/consortia/{consortium}/forest.png",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/consortia/{consortium}/render_pooled_report.benchmark.tsv",
    log:
        "logs/consortia/{consortium}/render_pooled_report.log",
    params:
        consortium="{consortium}",
        simulated=consortium_simulation,
    script:
        "../scripts/render_pooled_report.py"

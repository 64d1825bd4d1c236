# The study report: one self-contained HTML file and the same report as a Word document, with
# every table as CSV, as shown and as numbers, and every figure as SVG and PNG beside them
# (reports/<study>/tables/, reports/<study>/tidy/, reports/<study>/figures/).


rule render_report:
    input:
        summary="results/{study}/validation/summary.json",
        quarantine="results/{study}/validation/quarantine.csv",
        validated_clients="results/{study}/validated/clients.parquet",
        client_measures="results/{study}/client_measures.parquet",
        session_panel="results/{study}/session_panel.parquet",
        coefficients="results/{study}/models/coefficients.csv",
        diagnostics="results/{study}/models/diagnostics.json",
        reliability="results/{study}/reliability.csv",
        scores="results/{study}/scores.parquet",
        measures_metadata="results/{study}/measures_metadata.json",
        missing_by_session="results/{study}/models/missing_by_session.csv",
        missingness_vs_exposure="results/{study}/models/missingness_vs_exposure.csv",
    output:
        html=report(
            "reports/{study}/report.html",
            caption="../report/study_report.rst",
            category="Study report",
            labels={"study": "{study}", "kind": "report"},
        ),
        docx=report(
            "reports/{study}/report.docx",
            caption="../report/study_report_docx.rst",
            category="Study report",
            labels={"study": "{study}", "kind": "Word document"},
        ),
        tidy=report(
            directory("reports/{study}/tidy"),
            patterns=["{name}.csv"],
            caption="../report/tidy_tables.rst",
            category="Tables as numbers",
            labels={"study": "{study}", "table": "{name}"},
        ),
        tables=report(
            directory("reports/{study}/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
            labels={"study": "{study}", "table": "{name}"},
        ),
        figures=report(
            directory("reports/{study}/figures"),
            patterns=["{name}.svg"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"study": "{study}", "figure": "{name}"},
        ),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/render_report.benchmark.tsv",
    resources:
        mem_mb=job_memory("render_report"),
    log:
        "logs/{study}/render_report.log",
    params:
        study="{study}",
    script:
        "../scripts/render_report.py"

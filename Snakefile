# accord: validate -> measures -> models -> report, for every study in the config.
from snakemake.utils import min_version

min_version("9.0")


# A config given with --configfile replaces the shipped one (which declares the demo study).
if not config:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/measures.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/multisite.smk"


rule all:
    input:
        expand("reports/{study}/report.html", study=STUDIES),
        expand("reports/consortia/{consortium}/pooled.html", consortium=sorted(CONSORTIA)),
    default_target: True

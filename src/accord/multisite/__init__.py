"""Multi-site studies: pooling sites' model results (two-stage) and their rows (one-stage).

A consortium (config key ``consortia``) lists its sites. A site is either a study of the same
config, whose row-level data accord holds, or a results folder shared by a site that ran accord
itself and passes on model-level results only (coefficients.csv and diagnostics.json).
Two-stage pooling reads only what a site shares, for a local study too: its
``results/<study>/shared/`` copy, with small counts of clients withheld. Only the one-stage
model, opt-in (``one_stage: true``), reads the local sites' rows.

* `accord.multisite.consortium`: the config entry as `Consortium` and `Site` records.
* `accord.multisite.sites`: each site's estimates of the terms to pool, with exclusions and
  their reasons (``sites.csv``).
* `accord.multisite.pooling`: the two-stage random-effects meta-analysis (``pooled.csv``).
* `accord.multisite.one_stage`: the growth model on the local sites' stacked rows, with site
  fixed effects (``one_stage.csv``).
"""

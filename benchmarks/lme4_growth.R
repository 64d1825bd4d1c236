# The primary growth model fitted with lme4, for the benchmark's time comparison
# (python -m accord.bench; see README.md beside this file).
#
#   Rscript lme4_growth.R rows.csv
#
# rows.csv holds the rows accord's growth model uses: client, therapist, time, exposure, y.
# Prints one JSON line: the seconds of the fit alone (reading the file is not timed), the
# REML log-likelihood and the lme4 version.

suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
rows <- read.csv(args[1])
rows$client <- factor(rows$client)
rows$therapist <- factor(rows$therapist)
seconds <- system.time(
  fit <- lmer(y ~ time * exposure + (1 + time | client) + (1 | therapist), data = rows, REML = TRUE)
)[["elapsed"]]
cat(sprintf(
  '{"seconds": %.4f, "log_likelihood": %.6f, "lme4": "%s"}\n',
  seconds, as.numeric(logLik(fit)), as.character(packageVersion("lme4"))
))

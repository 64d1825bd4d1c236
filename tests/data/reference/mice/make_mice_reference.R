# Reference pooling from R's mice for tests/models/test_imputation.py.
#
# Run from this folder:   Rscript make_mice_reference.R
# Imputes mice's own `nhanes` data (25 rows, missing bmi, hyp and chl) five times, fits
# lm(chl ~ age + bmi) on each completed data set and pools the fits with mice::pool (Rubin's
# rules, Barnard-Rubin degrees of freedom). Writes:
#
#   completed.csv   the five completed data sets (.imp = imputation 1..5)
#   pooled.csv      pool() per term: estimate, ubar, b, t, dfcom, df, riv, lambda, fmi, and
#                   summary(pool, conf.int = TRUE): std_error, p_value, ci_low, ci_high
#
# Each file starts with a "#" line naming the R and mice versions. The test refits the OLS
# models on completed.csv and compares its own pooling with pooled.csv, so it checks the
# pooling alone, not the random imputations.

suppressPackageStartupMessages(library(mice))

version_line <- paste0(
  "# made by make_mice_reference.R with R ",
  paste(R.version$major, R.version$minor, sep = "."),
  ", mice ", as.character(packageVersion("mice"))
)

write_with_version <- function(frame, path) {
  writeLines(version_line, path)
  suppressWarnings(
    write.table(frame, path, sep = ",", row.names = FALSE, append = TRUE, quote = FALSE)
  )
}

imp <- mice(nhanes, m = 5, seed = 20260, printFlag = FALSE)
completed <- complete(imp, "long")[, c(".imp", ".id", "age", "bmi", "hyp", "chl")]
write_with_version(completed, "completed.csv")

fit <- with(imp, lm(chl ~ age + bmi))
pooled <- pool(fit)
p <- pooled$pooled
s <- summary(pooled, conf.int = TRUE)
out <- data.frame(
  term = as.character(p$term),
  estimate = p$estimate,
  ubar = p$ubar,
  b = p$b,
  t = p$t,
  dfcom = p$dfcom,
  df = p$df,
  riv = p$riv,
  lambda = p$lambda,
  fmi = p$fmi,
  std_error = s$std.error,
  p_value = s$p.value,
  ci_low = s[["2.5 %"]],
  ci_high = s[["97.5 %"]]
)
out$term[out$term == "(Intercept)"] <- "Intercept"

write_with_version(out, "pooled.csv")

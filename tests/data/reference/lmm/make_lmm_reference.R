# Reference fits of the full nested growth model for tests/models/test_lmm.py and tests/models/test_predict.py.
#
# Run from this folder:   Rscript make_lmm_reference.R
# Needs R with lme4. Reads the growth datasets one folder up (made by ../make_datasets.py) and
# fits phq9 ~ session_number * joint_goal_share + (1 + session_number | client_id) +
# (1 | therapist_id) by REML and by ML, with bobyqa run to a tight tolerance (rhoend 1e-10)
# so the estimates are those of the optimum rather than of lme4's default stopping rule.
# Writes, beside this script:
#
#   fits.csv          per dataset and method: fixed effects, their SEs (lme4's vcov),
#                     variance components and the log-likelihood
#   ranef.csv         conditional modes of every client (intercept, slope) and therapist
#   predictions.csv   predict(fit) and predict(fit, re.form = NA) for every row (REML)
#
# Every CSV starts with a "#" comment line naming the R and lme4 versions that made it.

suppressPackageStartupMessages(library(lme4))

version_line <- paste0(
  "# made by make_lmm_reference.R with R ", R.version$major, ".", R.version$minor,
  ", lme4 ", as.character(packageVersion("lme4")),
  ", Matrix ", as.character(packageVersion("Matrix"))
)
write_table <- function(frame, file) {
  con <- file(file, "w")
  writeLines(version_line, con)
  write.csv(frame, con, row.names = FALSE, na = "")
  close(con)
}
fmt <- function(x) signif(x, 14)

datasets <- c("growth_negcorr", "growth_sparse")
formula <- phq9 ~ session_number * joint_goal_share +
  (1 + session_number | client_id) + (1 | therapist_id)
control <- lmerControl(
  optimizer = "bobyqa",
  optCtrl = list(rhoend = 1e-10, maxfun = 1e5)
)

fit_rows <- list()
ranef_rows <- list()
prediction_rows <- list()
for (name in datasets) {
  data <- read.csv(file.path("..", paste0(name, ".csv")), stringsAsFactors = FALSE)
  data$client_id <- factor(data$client_id)
  data$therapist_id <- factor(data$therapist_id)
  for (reml in c(TRUE, FALSE)) {
    method <- if (reml) "REML" else "ML"
    fit <- lmer(formula, data = data, REML = reml, control = control)
    coefs <- summary(fit)$coefficients
    vc <- VarCorr(fit)
    values <- c(
      setNames(coefs[, "Estimate"], paste0("estimate:", rownames(coefs))),
      setNames(coefs[, "Std. Error"], paste0("std_error:", rownames(coefs))),
      client_intercept = vc$client_id[1, 1],
      client_slope = vc$client_id[2, 2],
      client_intercept_slope_covariance = vc$client_id[1, 2],
      therapist_intercept = vc$therapist_id[1, 1],
      residual = sigma(fit)^2,
      log_likelihood = as.numeric(logLik(fit))
    )
    fit_rows[[paste(name, method)]] <- data.frame(
      dataset = name, method = method, quantity = names(values), value = fmt(unname(values))
    )
    if (reml) {
      re <- ranef(fit)
      ranef_rows[[paste(name, "client")]] <- data.frame(
        dataset = name, level = "client", id = rownames(re$client_id),
        intercept = fmt(re$client_id[, 1]), slope = fmt(re$client_id[, 2])
      )
      ranef_rows[[paste(name, "therapist")]] <- data.frame(
        dataset = name, level = "therapist", id = rownames(re$therapist_id),
        intercept = fmt(re$therapist_id[, 1]), slope = NA
      )
      prediction_rows[[name]] <- data.frame(
        dataset = name, client_id = data$client_id, session_number = data$session_number,
        fitted_conditional = fmt(unname(predict(fit))),
        fitted_population = fmt(unname(predict(fit, re.form = NA)))
      )
    }
  }
}
write_table(do.call(rbind, fit_rows), "fits.csv")
write_table(do.call(rbind, ranef_rows), "ranef.csv")
write_table(do.call(rbind, prediction_rows), "predictions.csv")

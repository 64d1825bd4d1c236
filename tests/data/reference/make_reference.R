# Reference results from R for tests/models/test_reference.py.
#
# Run from this folder, after make_datasets.py:   Rscript make_reference.R
# Needs R with lme4 and survival; lmerTest (Satterthwaite df and p-values) and jsonlite are
# used when installed. Writes, beside the datasets:
#
#   growth_fixed.csv    fixed effects of each growth dataset (estimate, std_error, df, p_value)
#   growth_random.csv   variance components and the REML log-likelihood of each growth dataset
#   cox.csv             coxph(Surv(time, event) ~ ..., ties = "efron"): coef, std_error
#   logrank.csv         survdiff(Surv(time, event) ~ x): chi-square, df, p-value
#   versions.json       R and package versions
#
# Every CSV starts with a "#" comment line naming the R and package versions that made it.

suppressPackageStartupMessages({
  library(lme4)
  library(survival)
})
has_lmertest <- requireNamespace("lmerTest", quietly = TRUE)

versions <- list(
  R = paste(R.version$major, R.version$minor, sep = "."),
  lme4 = as.character(packageVersion("lme4")),
  Matrix = as.character(packageVersion("Matrix")),
  survival = as.character(packageVersion("survival")),
  lmerTest = if (has_lmertest) as.character(packageVersion("lmerTest")) else NA_character_
)
version_line <- paste0(
  "# made by make_reference.R with ",
  paste(names(versions), unlist(versions), collapse = ", ")
)

write_table <- function(frame, file) {
  con <- file(file, "w")
  writeLines(version_line, con)
  write.csv(frame, con, row.names = FALSE, na = "")
  close(con)
}

fmt <- function(x) signif(x, 12)

datasets <- c("growth_interaction", "growth_negcorr", "growth_sparse")
formula <- phq9 ~ session_number * joint_goal_share +
  (1 + session_number | client_id) + (1 | therapist_id)

fixed_rows <- list()
random_rows <- list()
for (name in datasets) {
  data <- read.csv(paste0(name, ".csv"), stringsAsFactors = TRUE)
  warnings_seen <- character(0)
  fit <- withCallingHandlers(
    lmer(formula, data = data, REML = TRUE),
    warning = function(w) {
      warnings_seen <<- c(warnings_seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  conv_messages <- c(warnings_seen, fit@optinfo$conv$lme4$messages)
  coefs <- summary(fit)$coefficients
  df <- rep(NA_real_, nrow(coefs))
  p <- rep(NA_real_, nrow(coefs))
  if (has_lmertest) {
    sat <- summary(lmerTest::as_lmerModLmerTest(fit), ddf = "Satterthwaite")$coefficients
    df <- sat[, "df"]
    p <- sat[, "Pr(>|t|)"]
  }
  fixed_rows[[name]] <- data.frame(
    dataset = name,
    term = rownames(coefs),
    estimate = fmt(coefs[, "Estimate"]),
    std_error = fmt(coefs[, "Std. Error"]),
    df = fmt(df),
    p_value = fmt(p)
  )
  vc <- VarCorr(fit)
  client <- vc$client_id
  components <- c(
    client_intercept = client[1, 1],
    client_slope = client[2, 2],
    client_intercept_slope_covariance = client[1, 2],
    therapist_intercept = vc$therapist_id[1, 1],
    residual = sigma(fit)^2,
    reml_log_likelihood = as.numeric(logLik(fit, REML = TRUE))
  )
  random_rows[[name]] <- data.frame(
    dataset = name,
    quantity = names(components),
    value = fmt(unname(components)),
    n_obs = nobs(fit),
    n_clients = ngrps(fit)[["client_id"]],
    n_therapists = ngrps(fit)[["therapist_id"]],
    singular = isSingular(fit),
    optimizer = fit@optinfo$optimizer,
    warnings = paste(conv_messages, collapse = "; ")
  )
}
write_table(do.call(rbind, fixed_rows), "growth_fixed.csv")
write_table(do.call(rbind, random_rows), "growth_random.csv")

surv <- read.csv("survival.csv")
cox_rows <- list()
for (rhs in c("x", "x + z")) {
  fit <- coxph(as.formula(paste("Surv(time, event) ~", rhs)), data = surv, ties = "efron")
  s <- summary(fit)$coefficients
  cox_rows[[rhs]] <- data.frame(
    model = rhs,
    term = rownames(s),
    estimate = fmt(s[, "coef"]),
    std_error = fmt(s[, "se(coef)"]),
    log_likelihood = fmt(fit$loglik[2]),
    n = fit$n,
    n_events = fit$nevent
  )
}
write_table(do.call(rbind, cox_rows), "cox.csv")

lr <- survdiff(Surv(time, event) ~ x, data = surv)
write_table(
  data.frame(
    group = "x",
    chisq = fmt(lr$chisq),
    df = length(lr$n) - 1,
    p_value = fmt(pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE))
  ),
  "logrank.csv"
)

if (requireNamespace("jsonlite", quietly = TRUE)) {
  writeLines(jsonlite::toJSON(versions, auto_unbox = TRUE, pretty = TRUE, na = "null"),
             "versions.json")
} else {
  entries <- vapply(names(versions), function(k) {
    v <- versions[[k]]
    sprintf('  "%s": %s', k, if (is.na(v)) "null" else sprintf('"%s"', v))
  }, character(1))
  writeLines(c("{", paste(entries, collapse = ",\n"), "}"), "versions.json")
}

# Reference values for the mixed-model extras (tests/models/test_mixed_inference.py).
#
# Run from this folder:   Rscript make_mixed_inference_reference.R
# Needs R with lme4 and lmerTest. Reads the growth datasets one folder up (made by
# ../make_datasets.py) and fits phq9 ~ session_number * joint_goal_share +
# (1 + session_number | client_id) + (1 | therapist_id) by REML with bobyqa run to a tight
# tolerance (rhoend 1e-10). Writes, beside this script:
#
#   profile_ci.csv     confint(fit, parm = "theta_", method = "profile"): 95% profile
#                      likelihood intervals of the random-effect SDs, the client
#                      intercept-slope correlation and the residual SD (lme4 profiles the
#                      ML deviance of the model refitted by ML, whatever the fit's method)
#   satterthwaite.csv  lmerTest's summary(ddf = "Satterthwaite"): estimate, SE, df, t, p
#   r_squared.csv      marginal and conditional R^2 of Nakagawa & Schielzeth (2013) with
#                      Johnson's (2014) random-slope variance, by the formula of
#                      performance::r2_nakagawa / insight::get_variance (neither package is
#                      installed here): var_fixed = var(X b) (n - 1 denominator),
#                      var_random = sum over random terms of mean_i z_i' Sigma z_i,
#                      var_residual = sigma^2
#
# Every CSV starts with a "#" comment line naming the R and package versions that made it.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

version_line <- paste0(
  "# made by make_mixed_inference_reference.R with R ", R.version$major, ".", R.version$minor,
  ", lme4 ", as.character(packageVersion("lme4")),
  ", lmerTest ", as.character(packageVersion("lmerTest")),
  ", Matrix ", as.character(packageVersion("Matrix"))
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
control <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
# lme4's profile parameter names (oldNames = FALSE) and accord's.
parameter_names <- c(
  "sd_(Intercept)|client_id" = "client_intercept_sd",
  "cor_session_number.(Intercept)|client_id" = "client_intercept_slope_correlation",
  "sd_session_number|client_id" = "client_slope_sd",
  "sd_(Intercept)|therapist_id" = "therapist_intercept_sd",
  "sigma" = "residual_sd"
)

profile_rows <- list()
satterthwaite_rows <- list()
r2_rows <- list()
for (name in datasets) {
  data <- read.csv(file.path("..", paste0(name, ".csv")), stringsAsFactors = FALSE)
  data$client_id <- factor(data$client_id)
  data$therapist_id <- factor(data$therapist_id)
  fit <- lmer(formula, data = data, REML = TRUE, control = control)

  ml <- refitML(fit)
  # as.data.frame(VarCorr()) lists the client SDs, then the correlation, then the rest.
  ml_sdcor <- setNames(as.data.frame(VarCorr(ml))$sdcor, c(
    "sd_(Intercept)|client_id", "sd_session_number|client_id",
    "cor_session_number.(Intercept)|client_id", "sd_(Intercept)|therapist_id", "sigma"
  ))
  ci <- confint(fit, parm = "theta_", method = "profile", oldNames = FALSE)
  profile_rows[[name]] <- data.frame(
    dataset = name,
    parameter = unname(parameter_names[rownames(ci)]),
    ml_estimate = fmt(unname(ml_sdcor[rownames(ci)])),
    ci_low = fmt(ci[, 1]),
    ci_high = fmt(ci[, 2])
  )

  sat <- summary(as_lmerModLmerTest(fit), ddf = "Satterthwaite")$coefficients
  satterthwaite_rows[[name]] <- data.frame(
    dataset = name,
    term = rownames(sat),
    estimate = fmt(sat[, "Estimate"]),
    std_error = fmt(sat[, "Std. Error"]),
    df = fmt(sat[, "df"]),
    t_value = fmt(sat[, "t value"]),
    p_value = fmt(sat[, "Pr(>|t|)"])
  )

  X <- getME(fit, "X")
  var_fixed <- var(as.vector(X %*% fixef(fit)))
  vc <- VarCorr(fit)
  var_random <- sum(vapply(vc, function(Sigma) {
    Z <- X[, rownames(Sigma), drop = FALSE]
    sum(diag(crossprod(Z %*% Sigma, Z))) / nobs(fit)
  }, numeric(1)))
  var_residual <- sigma(fit)^2
  total <- var_fixed + var_random + var_residual
  r2_rows[[name]] <- data.frame(
    dataset = name,
    var_fixed = fmt(var_fixed),
    var_random = fmt(var_random),
    var_residual = fmt(var_residual),
    r2_marginal = fmt(var_fixed / total),
    r2_conditional = fmt((var_fixed + var_random) / total)
  )
}
write_table(do.call(rbind, profile_rows), "profile_ci.csv")
write_table(do.call(rbind, satterthwaite_rows), "satterthwaite.csv")
write_table(do.call(rbind, r2_rows), "r_squared.csv")

# Reference likelihood-ratio tests from R for tests/models/test_lrt.py.
#
# Run from this folder:   Rscript make_lrt_reference.R
# Needs R with lme4. Reads the growth datasets one folder up and writes anova.csv: for each
# dataset and each reduced model, anova(reduced, full) of models refitted by ML (what lme4
# does by default), with both models' log-likelihood, number of parameters, AIC and BIC, the
# chi-square statistic, its df and p-value. The first line is a "#" comment naming the R and
# lme4 versions that made it.

suppressPackageStartupMessages(library(lme4))

version_line <- paste0(
  "# made by make_lrt_reference.R with R ",
  paste(R.version$major, R.version$minor, sep = "."),
  ", lme4 ", as.character(packageVersion("lme4"))
)
fmt <- function(x) signif(x, 12)

full_formula <- phq9 ~ session_number * joint_goal_share +
  (1 + session_number | client_id) + (1 | therapist_id)
reduced <- list(
  "time:exposure" = phq9 ~ session_number + joint_goal_share +
    (1 + session_number | client_id) + (1 | therapist_id),
  "therapist_intercept" = phq9 ~ session_number * joint_goal_share +
    (1 + session_number | client_id),
  "client_slope" = phq9 ~ session_number * joint_goal_share +
    (1 | client_id) + (1 | therapist_id)
)

rows <- list()
for (name in c("growth_interaction", "growth_negcorr")) {
  data <- read.csv(file.path("..", paste0(name, ".csv")), stringsAsFactors = TRUE)
  full <- lmer(full_formula, data = data, REML = FALSE)
  for (dropped in names(reduced)) {
    small <- lmer(reduced[[dropped]], data = data, REML = FALSE)
    table <- anova(small, full)
    rows[[paste(name, dropped)]] <- data.frame(
      dataset = name,
      dropped = dropped,
      loglik_full = fmt(as.numeric(logLik(full))),
      loglik_reduced = fmt(as.numeric(logLik(small))),
      npar_full = table$npar[2],
      npar_reduced = table$npar[1],
      aic_full = fmt(table$AIC[2]),
      aic_reduced = fmt(table$AIC[1]),
      bic_full = fmt(table$BIC[2]),
      bic_reduced = fmt(table$BIC[1]),
      chisq = fmt(table$Chisq[2]),
      df = table$Df[2],
      p_value = fmt(table[["Pr(>Chisq)"]][2])
    )
  }
}
con <- file("anova.csv", "w")
writeLines(version_line, con)
write.csv(do.call(rbind, rows), con, row.names = FALSE)
close(con)

# Reference therapist models from R's lme4 for tests/models/test_therapist_post.py.
#
# Run from this folder:   Rscript make_therapist_post_reference.R
# Needs R with lme4. Reads post.csv (made by make_therapist_post_data.py) and writes fits.csv:
# for the post score adjusted for centred intake with a therapist random intercept, and with a
# correlated therapist random intercept and intake slope, both by REML, the fixed effects,
# the variance components, the REML criterion (deviance) and the therapist ICC of the
# intercept model. The first line is a "#" comment naming the R and lme4 versions.

suppressPackageStartupMessages(library(lme4))

version_line <- paste0(
  "# made by make_therapist_post_reference.R with R ",
  paste(R.version$major, R.version$minor, sep = "."),
  ", lme4 ", as.character(packageVersion("lme4"))
)
fmt <- function(x) signif(x, 12)

d <- read.csv("post.csv")
d$intake_centred <- d$phq9_first - mean(d$phq9_first)
control <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
fits <- list(
  intercept = lmer(phq9_post ~ intake_centred + (1 | therapist_id), d, REML = TRUE,
                   control = control),
  slopes = lmer(phq9_post ~ intake_centred + (1 + intake_centred | therapist_id), d,
                REML = TRUE, control = control)
)
rows <- list()
add <- function(model, name, value) {
  rows[[length(rows) + 1]] <<- data.frame(model = model, name = name, value = fmt(value))
}
for (model in names(fits)) {
  fit <- fits[[model]]
  fe <- fixef(fit)
  se <- sqrt(diag(as.matrix(vcov(fit))))
  for (k in names(fe)) {
    add(model, paste0("estimate:", k), fe[[k]])
    add(model, paste0("std_error:", k), se[[k]])
  }
  vc <- as.data.frame(VarCorr(fit))
  for (k in seq_len(nrow(vc))) {
    label <- paste(na.omit(c(vc$grp[k], vc$var1[k], vc$var2[k])), collapse = ":")
    add(model, paste0("vcov:", label), vc$vcov[k])
  }
  add(model, "reml_deviance", REMLcrit(fit))
}
vc <- as.data.frame(VarCorr(fits$intercept))
add("intercept", "icc_therapist", vc$vcov[1] / sum(vc$vcov))
writeLines(version_line, "fits.csv")
suppressWarnings(write.table(do.call(rbind, rows), "fits.csv", sep = ",", row.names = FALSE,
                             append = TRUE, quote = TRUE))

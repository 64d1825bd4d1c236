# Reference cumulative incidence from R's cmprsk for tests/models/test_competing.py.
#
# Run from this folder:   Rscript make_cmprsk_reference.R
# Needs R with cmprsk. Reads competing.csv (group, time, cause: 1 dropout, 2 completion,
# 0 censored; made by make_competing_data.py) and writes cuminc.csv: for each group and cause,
# cuminc's estimate and variance at times 0..13 (timepoints(), the step function's value at
# each time (missing past the last follow-up). The first line is a "#" comment naming the R
# and cmprsk versions that made it.

suppressPackageStartupMessages(library(cmprsk))

version_line <- paste0(
  "# made by make_cmprsk_reference.R with R ",
  paste(R.version$major, R.version$minor, sep = "."),
  ", cmprsk ", as.character(packageVersion("cmprsk"))
)
fmt <- function(x) signif(x, 12)

d <- read.csv("competing.csv")
fit <- cuminc(d$time, d$cause, d$group, cencode = 0)
times <- 0:12
at <- timepoints(fit[names(fit) != "Tests"], times)
rows <- list()
for (name in rownames(at$est)) {
  parts <- strsplit(name, " ")[[1]]
  for (k in seq_along(times)) {
    rows[[length(rows) + 1]] <- data.frame(
      group = parts[1], cause = as.integer(parts[2]), time = times[k],
      estimate = fmt(at$est[name, k]), variance = fmt(at$var[name, k])
    )
  }
}
out <- do.call(rbind, rows)
writeLines(version_line, "cuminc.csv")
suppressWarnings(write.table(out, "cuminc.csv", sep = ",", row.names = FALSE, append = TRUE,
                             quote = TRUE, na = ""))

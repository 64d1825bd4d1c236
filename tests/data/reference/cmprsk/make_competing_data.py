"""Write competing.csv, the competing-risks fixture for make_cmprsk_reference.R.

Two groups of 60 clients; each session a client drops out (cause 1) with probability h1,
completes (cause 2) with probability h2, and otherwise goes on to the next session, censored
(cause 0) at session 12 or, with probability .03 a session, earlier. Times are whole sessions,
so ties are heavy, as in real dropout data. Run from this folder: python make_competing_data.py
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(15)
rows = []
for group, (h1, h2) in {"a": (0.08, 0.06), "b": (0.04, 0.09)}.items():
    for _ in range(60):
        t = 1
        while True:
            u = rng.random()
            if u < h1:
                cause = 1
                break
            if u < h1 + h2:
                cause = 2
                break
            if t >= 12 or rng.random() < 0.03:
                cause = 0
                break
            t += 1
        rows.append((group, t, cause))
pd.DataFrame(rows, columns=["group", "time", "cause"]).to_csv("competing.csv", index=False)

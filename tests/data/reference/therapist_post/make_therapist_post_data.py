"""Write post.csv, the fixture for make_therapist_post_reference.R.

30 therapists with 8 to 20 clients each; intake ~ N(16, 4^2); post = 10 + 0.6 (intake - 16)
+ v_j + w_j (intake - 16) + e, with v_j ~ N(0, 1), w_j ~ N(0, 0.1^2) (corr 0) and e ~ N(0, 3^2):
a therapist ICC of post adjusted for intake of 1 / (1 + 9) = .10 at mean intake. Post scores
are rounded to whole points, as questionnaire totals are. Run from this folder:
python make_therapist_post_data.py
"""

import numpy as np
import pandas as pd

rng = np.random.default_rng(515)
rows = []
for j in range(30):
    v, w = rng.normal(0, 1.0), rng.normal(0, 0.1)
    for i in range(int(rng.integers(8, 21))):
        intake = float(np.clip(np.rint(rng.normal(16, 4)), 0, 27))
        post = 10 + 0.6 * (intake - 16) + v + w * (intake - 16) + rng.normal(0, 3)
        rows.append((f"T{j:02d}", f"C{j:02d}{i:02d}", intake, float(np.clip(np.rint(post), 0, 27))))
pd.DataFrame(rows, columns=["therapist_id", "client_id", "phq9_first", "phq9_post"]).to_csv(
    "post.csv", index=False
)

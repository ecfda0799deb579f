"""Planning, not a benchmark: seeds per method that would turn each of the default suite's n=1 claims into an answer (80% power, 95%).

Inputs, all committed tables: MeZO's seed-to-seed std of test accuracy from the verdicts suite
(results/tables/verdicts-runs.csv, 5 seeds), and each default claim's one-seed interval
(results/tables/claims-main.csv: its half-width / 1.96 is the test-example noise alone).
se(n) ≈ sqrt((2σ² + se_ex²) / n) for two trained cells paired on seeds (σ² once when b is zero-shot, whose
predictions do not depend on the seed); MDE(n) = (z_.975 + z_.8)·se(n); the smallest n with MDE(n) below
the distance of the observed effect from the claim's threshold (|effect| − margin for ≈, |effect − margin| else).
Run from the repository root: python bench/seeds_to_decide.py
"""

import math

import pandas as pd
from scipy import stats

runs = pd.read_csv("results/tables/verdicts-runs.csv")
mezo = runs[runs.variant == "mezo"]
col = "test_score" if "test_score" in runs else "test_accuracy"
sigma = mezo[col].std(ddof=1)
print(f"MeZO seed std of test accuracy (verdicts suite, n={len(mezo)}): {100 * sigma:.2f} pp")
z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
claims = pd.read_csv("results/tables/claims-main.csv")
for r in claims.itertuples():
    se_ex = (r.ci_high - r.ci_low) / 2 / stats.norm.ppf(0.975)
    trained = sum(v != "zero_shot" for v in (r.a, r.b))
    var1 = trained * sigma**2 + se_ex**2
    gap = abs(r.effect) - r.margin if r.direction == "≈" else abs(r.effect - r.margin)
    n = max(2, math.ceil(z**2 * var1 / gap**2)) if gap > 0 else math.inf
    for_points = ", ".join(f"{d} pp: {max(2, math.ceil(z**2 * var1 / (d / 100) ** 2))}" for d in (1, 2))
    print(
        f"{r.claim}: effect {100 * r.effect:+.1f} pp, example-noise se {100 * se_ex:.2f} pp, seeds per method "
        f"to decide at this effect: {n}; to detect a true effect of {for_points}"
    )

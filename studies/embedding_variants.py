"""ODIM variants on the shared embedding sets: the candidates behind the wide-data defaults.

    python studies/embedding_variants.py [--variants today,k5_m5] [--seeds 0,1,2] [--jobs 2]
        [--sets ...] [--tag TAG] [--report-only]

Each variant is a set of ODIM constructor arguments (``VARIANTS``), fitted
and reported by ``benchmarks/bench_embeddings.py`` (same cache, same
report): ``today`` spells out the defaults the embedding work started from,
and each later name spells out every default that changed after it, so
that a name keeps naming the same fits. docs/decisions.md has what each
measured and which became a default.
"""

import os
import sys

# The benchmarks' shared helpers and bench_embeddings live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

import bench_embeddings  # noqa: E402

# The variants spell out every default that changed after them (patience,
# checks, warm-up, rate), so that each name keeps naming the same fits.
EARLIER = dict(min_updates=100, lr=1e-3)
TODAY = dict(n_samples_train=10, n_samples_check=None, patience=10, n_estimators=10,
             likelihood="gaussian", selection_size=8192, **EARLIER)
# The wide-data patience and check subset, with the warm-up and rate before them.
P5_SEL2K = dict(patience=5, selection_size=2048, **EARLIER)
# k5_m5 is the first wide-data rule (5 members, 5 training samples); the
# variants after it are the alternatives measured beside it (docs/decisions.md,
# "Wide data").
VARIANTS = {
    "defaults": {},
    "today": TODAY,
    # The defaults before the wide-data patience and check subset
    # (pyod_odim.detector.WIDE_DEFAULTS), rectified decoder included.
    "before": dict(patience=10, selection_size=8192, **EARLIER),
    # The defaults before likelihood="auto" (docs/decisions.md, "A
    # likelihood for sparse features"); on sets "auto" leaves Gaussian it is
    # the same fit as "before".
    "gaussian": dict(likelihood="gaussian", patience=10, selection_size=8192, **EARLIER),
    "k5": dict(TODAY, n_samples_train=5),
    "k5_m5": dict(TODAY, n_samples_train=5, n_estimators=5),
    "m5": dict(TODAY, n_estimators=5),
    "h64": dict(TODAY, hidden_sizes=(64, 32)),
    "h64_k5": dict(TODAY, hidden_sizes=(64, 32), n_samples_train=5),
    # Candidates of the cheaper wide-data defaults (docs/decisions.md), as
    # changes from the defaults before them; p5_sel2k is what the defaults
    # did above 256 features before the warm-up and rate below.
    "b64": dict(batch_size=64, patience=10, selection_size=8192, **EARLIER),
    "p5": dict(patience=5, selection_size=8192, **EARLIER),
    "sel2k": dict(patience=10, selection_size=2048, **EARLIER),
    "iw20": dict(n_samples_iwae=20, patience=10, selection_size=8192, **EARLIER),
    "fast": dict(batch_size=64, patience=5, selection_size=2048, **EARLIER),
    "fast_iw20": dict(batch_size=64, patience=5, selection_size=2048, n_samples_iwae=20,
                      **EARLIER),
    "p5_sel2k": P5_SEL2K,
    # A shorter warm-up on top of p5_sel2k.
    "w50": dict(P5_SEL2K, min_updates=50),
    # Longer warm-ups on top of p5_sel2k: half the members kept one of the
    # first three checks allowed (100-120) and the shorter warm-up lost.
    "w150": dict(P5_SEL2K, min_updates=150),
    "w200": dict(P5_SEL2K, min_updates=200),
    # A larger step instead of more updates (same cost as p5_sel2k); the
    # defaults now take lr2_w150 on the ResNet sets, w150 on the dense ones.
    "lr2": dict(P5_SEL2K, lr=2e-3),
    "lr2_w150": dict(P5_SEL2K, lr=2e-3, min_updates=150),
    # A still larger rate on top of the current defaults.
    "lr3_w150": dict(P5_SEL2K, lr=3e-3, min_updates=150),
    # Which state a member keeps: its best check (the paper's) or the state
    # it stops in, with the wide-data warm-up and rates of commit 42384a4.
    "best": dict(P5_SEL2K, min_updates=150, lr="auto", checkpoint="best"),
    "last": dict(P5_SEL2K, min_updates=150, lr="auto", checkpoint="last"),
    # The same with the warm-up of at least 5 passes over the rows.
    "best_e5": dict(P5_SEL2K, min_updates="auto", lr="auto", checkpoint="best"),
    "last_e5": dict(P5_SEL2K, min_updates="auto", lr="auto", checkpoint="last"),
}

if __name__ == "__main__":
    bench_embeddings.main(VARIANTS, default_variants="today,defaults")

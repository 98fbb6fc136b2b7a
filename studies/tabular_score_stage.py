"""A scoring stage after ODIM's early checkpoint, on the shared tabular sets (issue 27).

Two protocols, seeds / iterations 0..n-1:

* ``paper``: fit on all rows (raw features), AUC of the training scores;
* ``pyod``: PyOD's benchmark protocol: ``train_test_split(X, y, test_size=0.4,
  random_state=np.random.RandomState(i))``, ``standardizer``,
  ``contamination`` = outlier fraction, ROC-AUC and precision @ n of
  ``decision_function`` on the test rows. ODIM gets a fresh
  ``RandomState(i)`` drawn after the split (bench_protocols hands it the
  stream after the peers drew; both the baseline and the candidates here
  share this one fit, so they compare on equal terms).

Today's ODIM is fitted once per (set, seed, protocol); its training and test
scores, the rows in ODIM's own min-max scaling and the fit seconds are cached
in ``--cache`` (npz files), so each candidate scoring rule costs only its own
work. A candidate is a function of (scaled training rows, ODIM training
scores, scaled test rows, ODIM test scores, contamination) that returns new
training and test scores. One thread throughout.

    python studies/tabular_score_stage.py [--sets ...] [--seeds 3]
        [--protocols paper,pyod] [--candidates ...] [--cache /tmp/odim_stage]
"""

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import COMPARABLE, DIFFERENT, load  # noqa: E402

TABULAR = COMPARABLE + DIFFERENT
# Small sets first; cover (286k rows) last.
ORDER = ["glass", "wbc", "ionosphere", "breastw", "pima", "vowels", "cardio", "thyroid",
         "satimage-2", "satellite", "pendigits", "mammography", "musk", "shuttle", "cover"]


# ------------------------------------------------------------- today's ODIM

def odim_run(name, seed, protocol, cache):
    """Cached fit of today's ODIM: dict of arrays (train/test rows scaled, scores, labels)."""
    path = os.path.join(cache, f"{name}_{seed}_{protocol}.npz")
    if os.path.exists(path):
        return dict(np.load(path))
    import torch
    from pyod_odim import ODIM

    # Today's ODIM: the ensemble's score alone (code from before score_stage has no such parameter).
    PAPER = {"score_stage": "paper"} if "score_stage" in ODIM().get_params() else {}
    torch.set_num_threads(1)
    X, y = load(name)
    if protocol == "paper":
        X_train, y_train, X_test, y_test = X, y, X[:0], y[:0]
        clf = ODIM(random_state=seed, n_jobs=1, **PAPER)
    else:
        from pyod.utils.utility import standardizer
        from sklearn.model_selection import train_test_split

        rs = np.random.RandomState(seed)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=rs)
        X_train, X_test = standardizer(X_train, X_test)
        clf = ODIM(contamination=np.count_nonzero(y) / len(y),
                   random_state=np.random.RandomState(seed), n_jobs=1, **PAPER)
    t0 = time.perf_counter()
    clf.fit(X_train)
    seconds = time.perf_counter() - t0
    out = dict(
        train=clf.scorer_.scaling.transform(X_train).astype(np.float32),
        test=clf.scorer_.scaling.transform(X_test).astype(np.float32),
        s_train=clf.decision_scores_, s_test=clf.decision_function(X_test) if len(X_test)
        else np.zeros(0), y_train=y_train, y_test=y_test, seconds=np.float64(seconds),
        contamination=np.float64(clf.contamination))
    np.savez(path, **out)
    return out


# --------------------------------------------------------------- candidates

def ecdf(reference, values):
    """Mid-rank empirical distribution function of ``reference`` at ``values``."""
    ref = np.sort(reference)
    return (np.searchsorted(ref, values, "left") + np.searchsorted(ref, values, "right")) / (
        2.0 * len(ref))


def gmm_upper_share(scores):
    """Weight of the upper component of a 2-component GMM on the scores (rank-gaussianized)."""
    from sklearn.mixture import GaussianMixture

    z = np.log1p(np.maximum(scores - scores.min(), 0.0)).reshape(-1, 1)
    g = GaussianMixture(2, random_state=0).fit(z)
    upper = int(np.argmax(g.means_.ravel()))
    return float(g.weights_[upper])


def knn_scores(reference, rows, k, exclude_self=False):
    """Distance to the k-th nearest reference row (PyOD KNN's 'largest')."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference) - int(exclude_self))
    nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(reference)
    dist = nn.kneighbors(rows)[0]
    return dist[:, -1]


def trusted_mask(s_train, share):
    cut = np.quantile(s_train, 1.0 - share)
    return s_train <= cut


def make_share(rule):
    def share(run):
        if rule == "contamination":
            return float(run["contamination"])
        if rule == "gmm":
            return float(np.clip(gmm_upper_share(run["s_train"]), 0.02, 0.3))
        return float(rule)
    return share


def cleaned_knn(run, share, k=5):
    """KNN distance to the rows ODIM trusts; training rows scored as new rows."""
    keep = trusted_mask(run["s_train"], share)
    ref = run["train"][keep]
    return knn_scores(ref, run["train"], k), knn_scores(ref, run["test"], k) if len(
        run["test"]) else np.zeros(0)


def rank_blend(run, a_train, a_test, b_train, b_test, weight):
    """weight * F_a + (1 - weight) * F_b, each F the training rows' ECDF."""
    tr = weight * ecdf(a_train, a_train) + (1 - weight) * ecdf(b_train, b_train)
    te = weight * ecdf(a_train, a_test) + (1 - weight) * ecdf(b_train, b_test)
    return tr, te


def separation(scores, share):
    """How far the top ``share`` of scores sits from the rest, in the rest's robust spread."""
    cut = np.quantile(scores, 1.0 - share)
    top, rest = scores[scores > cut], scores[scores <= cut]
    if len(top) == 0:
        return 0.0
    med = np.median(rest)
    mad = np.median(np.abs(rest - med)) * 1.4826 + 1e-12
    return float((np.median(top) - med) / mad)


def robust_z(reference, values):
    """(values - median) / (1.4826 MAD), both of ``reference``."""
    med = np.median(reference)
    mad = np.median(np.abs(reference - med)) * 1.4826
    if mad <= 0:
        mad = np.std(reference) + 1e-12
    return (values - med) / mad


def candidates():
    """{name: fn(run) -> (train scores, test scores)}."""
    out = {}
    for rule in ("0.1", "0.15", "contamination", "gmm"):
        share = make_share(rule)

        def knn_only(run, share=share):
            return cleaned_knn(run, share(run))

        def blend_half(run, share=share):
            k_tr, k_te = cleaned_knn(run, share(run))
            return rank_blend(run, run["s_train"], run["s_test"], k_tr, k_te, 0.5)

        def blend_sep(run, share=share):
            q = share(run)
            k_tr, k_te = cleaned_knn(run, q)
            so, sk = separation(run["s_train"], q), separation(k_tr, q)
            w = so / (so + sk) if so + sk > 0 else 0.5
            return rank_blend(run, run["s_train"], run["s_test"], k_tr, k_te, w)

        def rank_max(run, share=share):
            k_tr, k_te = cleaned_knn(run, share(run))
            a = ecdf(run["s_train"], run["s_train"]), ecdf(run["s_train"], run["s_test"])
            b = ecdf(k_tr, k_tr), ecdf(k_tr, k_te)
            return np.maximum(a[0], b[0]), np.maximum(a[1], b[1])

        def zsum(run, share=share, combine=np.add):
            k_tr, k_te = cleaned_knn(run, share(run))
            za = robust_z(run["s_train"], run["s_train"]), robust_z(run["s_train"], run["s_test"])
            zb = robust_z(k_tr, k_tr), robust_z(k_tr, k_te)
            return combine(za[0], zb[0]), combine(za[1], zb[1])

        out[f"rankmax[{rule}]"] = rank_max
        out[f"zsum[{rule}]"] = zsum
        out[f"zmax[{rule}]"] = lambda run, share=share: zsum(run, share, np.maximum)
        out[f"knn[{rule}]"] = knn_only
        out[f"blend.5[{rule}]"] = blend_half
        out[f"blend-sep[{rule}]"] = blend_sep
    def product_stage(run):
        """The shipped rule: pyod_odim.neighbor_stage.CleanedNeighborStage at its defaults."""
        from pyod_odim.neighbor_stage import CleanedNeighborStage

        stage = CleanedNeighborStage()
        train = stage.fit(run["train"], run["s_train"], 0)
        return train, stage.score(run["test"], run["s_test"]) if len(run["test"]) else np.zeros(0)

    out["stage"] = product_stage
    return out


# -------------------------------------------------------------------- report

def metrics(y, s):
    from pyod.utils.utility import precision_n_scores
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, s), precision_n_scores(y, s)


def peer_aucs(protocol):
    """{(detector, set): mean AUC} of PyOD's peers, from earlier runs (not refitted here).

    Paper protocol: ../shared/baselines/peers.jsonl (8 peers). PyOD protocol:
    the test ROC-AUC table of docs/results.md (bench_protocols, same splits and
    standardization as here; ODIM's column there is left out).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    if protocol == "paper":
        import json

        runs = {}
        with open(os.path.join(here, "..", "..", "shared", "baselines", "peers.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r.get("status") == "ok":
                    runs.setdefault((r["detector"], r["dataset"]), []).append(r["auc"])
        return {k: float(np.mean(v)) for k, v in runs.items()}
    with open(os.path.join(here, "..", "docs", "results.md")) as f:
        text = f.read()
    start = text.index("#### Test ROC-AUC per set (PyOD protocol")
    lines = []
    for ln in text[start:].splitlines()[2:]:
        if not ln.startswith("|"):
            break
        lines.append(ln)
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    for ln in lines[2:]:
        cells = [c.strip().strip("*") for c in ln.strip("|").split("|")]
        name = cells[0].split(" (")[0]
        for det, cell in zip(header[1:], cells[1:]):
            if det != "ODIM":
                try:
                    out[(det, name)] = float(cell)
                except ValueError:
                    pass
    return out


def rank_table(table, labels, sets, protocol, complete_peers=False):
    """Average AUC rank of each ODIM variant among the peers, on the sets where all ran.

    ``complete_peers``: only the peers with a result on every set instead.
    """
    from scipy.stats import rankdata

    peers = peer_aucs(protocol)
    names = sorted({d for d, _ in peers})
    if complete_peers:
        sets = [n for n in sets if any((d, n) in peers for d in names)]
        names = [d for d in names if all((d, n) in peers for n in sets)]
    on = [n for n in sets if all((d, n) in peers for d in names)]
    rows = []
    for lab in labels:
        ranks, means = [], []
        for n in on:
            mine = np.mean([v[0] for v in table[(lab, n)]])
            vals = [mine] + [peers[(d, n)] for d in names]
            ranks.append(rankdata([-v for v in vals])[0])
            means.append(mine)
        rows.append((lab, float(np.mean(ranks)), float(np.mean(means))))
    peer_rows = []
    for d in names:
        ranks = []
        for n in on:
            vals = [peers[(d, n)]] + [peers[(e, n)] for e in names if e != d] + [
                np.mean([v[0] for v in table[("ODIM", n)]])]
            ranks.append(rankdata([-v for v in vals])[0])
        peer_rows.append((d, float(np.mean(ranks)), float(np.mean([peers[(d, n)] for n in on]))))
    return on, names, rows, sorted(peer_rows, key=lambda r: r[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(s for s in ORDER if s != "cover"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--protocols", default="paper,pyod")
    p.add_argument("--candidates", default="")
    p.add_argument("--cache", default="/tmp/odim_stage")
    p.add_argument("--fit-only", action="store_true", help="only fill the cache")
    args = p.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    sets = [s for s in args.sets.split(",") if s]
    cands = candidates()
    chosen = [c for c in args.candidates.split(";") if c] or list(cands)
    for protocol in args.protocols.split(","):
        table = {}
        for name in sets:
            for seed in range(args.seeds):
                run = odim_run(name, seed, protocol, args.cache)
                if args.fit_only:
                    print(f"{protocol} {name} {seed} fit {float(run['seconds']):.1f}s", flush=True)
                    continue
                y, which = ((run["y_train"], 0) if protocol == "paper" else (run["y_test"], 1))
                base = run["s_train"] if which == 0 else run["s_test"]
                table.setdefault(("ODIM", name), []).append(metrics(y, base))
                for c in chosen:
                    t0 = time.perf_counter()
                    scores = cands[c](run)
                    extra = time.perf_counter() - t0
                    auc, prn = metrics(y, scores[which])
                    table.setdefault((c, name), []).append((auc, prn, extra / float(run["seconds"])))
        if args.fit_only:
            continue
        labels = ["ODIM"] + chosen
        print(f"\n## {protocol} protocol, {args.seeds} seeds, ROC-AUC mean (P@n mean)")
        print("| set | " + " | ".join(labels) + " |")
        print("|---|" + "---|" * len(labels))
        for name in sets:
            cells = [f"{np.mean([v[0] for v in table[(lab, name)]]):.3f}" for lab in labels]
            print(f"| {name} | " + " | ".join(cells) + " |")
        comp = [s for s in sets if s in COMPARABLE]
        for title, group in ((f"mean {len(comp)} comparable", comp), (f"mean {len(sets)}", sets)):
            cells = [f"{np.mean([np.mean([v[0] for v in table[(lab, n)]]) for n in group]):.4f}"
                     for lab in labels]
            print(f"| {title} | " + " | ".join(cells) + " |")
        worst = []
        for lab in labels:
            d = [np.mean([v[0] for v in table[(lab, n)]]) - np.mean([v[0] for v in table[("ODIM", n)]])
                 for n in sets]
            worst.append(f"{min(d):+.3f} ({sets[int(np.argmin(d))]})")
        print("| worst vs ODIM | " + " | ".join(worst) + " |")
        prn = [f"{np.mean([np.mean([v[1] for v in table[(lab, n)]]) for n in sets]):.3f}"
               for lab in labels]
        print("| mean P@n | " + " | ".join(prn) + " |")
        cost = ["-"] + [f"{np.median([v[2] for n in sets for v in table[(lab, n)]]):.2f}"
                        for lab in chosen]
        print("| extra time / fit (median) | " + " | ".join(cost) + " |")
        for complete in (False, True):
            on, names, rows, peer_rows = rank_table(table, labels, sets, protocol, complete)
            print(f"\nAverage AUC rank beside {len(names)} peers (each variant alone with "
                  f"them), {len(on)} sets: "
                  + ", ".join(f"{lab} {r:.2f} (mean {m:.3f})" for lab, r, m in rows))
            print("Peers beside today's ODIM: " + ", ".join(f"{d} {r:.2f} ({m:.3f})"
                                                           for d, r, m in peer_rows[:6]))


if __name__ == "__main__":
    main()

"""Training ROC-AUC / AP of ODIM beside the paper and PyOD's peers, in one run.

The paper's protocol: fit on all rows with the labels hidden, then score the
same rows. ODIM at its defaults (the neighbour stage up to 256 features)
and with the paper's score alone (``score_stage="paper"``), PyOD's IForest, KNN,
LOF, ECOD, OCSVM, AutoEncoder, VAE and DeepSVDD at their defaults (features
min-max scaled, as in ``../shared/baselines``), all in the same run, on the
17 shared sets, seeds 0..2.

    python benchmarks/bench_accuracy.py [--seeds 3] [--jobs 2] [--cache FILE]
        [--datasets ...] [--no-peers]
"""

import argparse

import numpy as np

from _common import (
    COMPARABLE, PAPER_IFOREST_AUC, PAPER_ODIM_AUC, ResultsText, add_results_argument,
    markdown_table, require_datasets, write_results,
)
from _grid import (
    ALL_SETS, PEERS, add_grid_arguments, average_ranks, mean_by, odim_tasks, peer_tasks, run_grid,
)
import pyod_odim

ODIM_VARIANTS = {
    "ODIM": {},
    # The paper's ODIM: the ensemble's score alone, without the neighbour stage.
    "ODIM, paper's score": {"score_stage": "paper"},
}


def fmt(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(ALL_SETS))
    add_grid_arguments(parser)
    parser.add_argument("--no-peers", action="store_true")
    add_results_argument(parser)
    args = parser.parse_args()
    require_datasets()
    names = args.datasets.split(",")
    seeds = list(range(args.seeds))
    tasks = odim_tasks(ODIM_VARIANTS, names, seeds)
    peers = () if args.no_peers else PEERS
    tasks += peer_tasks(peers, names, seeds)
    results = run_grid(tasks, jobs=args.jobs, cache=args.cache)
    auc, ap, secs = mean_by(results), mean_by(results, "ap"), mean_by(results, "seconds")
    spread = {}
    for r in results:
        spread.setdefault((r["label"], r["dataset"]), []).append(r["auc"])

    def get(table, label, name):
        return table.get((label, name))

    rows = []
    for name in names:
        paper = PAPER_ODIM_AUC.get(name) if name in COMPARABLE else None
        ours = get(auc, "ODIM", name)
        rows.append([
            name + ("" if name in COMPARABLE else " †"),
            f"{ours:.3f} ± {np.std(spread[('ODIM', name)]):.3f}",
            fmt(get(auc, "ODIM, paper's score", name)),
            fmt(paper), "-" if paper is None else f"{ours - paper:+.3f}",
            fmt(get(ap, "ODIM", name)), fmt(get(ap, "ODIM, paper's score", name)),
        ] + [fmt(get(auc, p, name)) for p in peers] + [fmt(get(secs, "ODIM", name), 1)])
    comparable = [n for n in names if n in COMPARABLE]

    def mean_of(table, label, sets):
        values = [table[(label, n)] for n in sets if (label, n) in table]
        return np.mean(values) if len(values) == len(sets) else float("nan")

    for title, sets in ((f"mean, {len(comparable)} comparable", comparable),
                        (f"mean, all {len(names)}", names)):
        if not sets:
            continue
        paper = np.mean([PAPER_ODIM_AUC[n] for n in sets]) if sets == comparable else None
        ours = mean_of(auc, "ODIM", sets)
        rows.append([
            f"**{title}**", f"**{ours:.3f}**", fmt(mean_of(auc, "ODIM, paper's score", sets)),
            fmt(paper), "-" if paper is None else f"{ours - paper:+.3f}",
            fmt(mean_of(ap, "ODIM", sets)), fmt(mean_of(ap, "ODIM, paper's score", sets)),
        ] + [fmt(mean_of(auc, p, sets)) for p in peers] + [""])
    if peers:
        labels = ["ODIM"] + list(peers)
        ranks, used = average_ranks(auc, labels, names)
        rows.append([f"**average AUC rank, {len(used)} sets**", f"**{ranks['ODIM']:.2f}**", "",
                     "", "", "", ""] + [f"{ranks[p]:.2f}" for p in peers] + [""])
        ap_ranks, _ = average_ranks(ap, labels, names)
        rows.append([f"**average AP rank, {len(used)} sets**", f"**{ap_ranks['ODIM']:.2f}**", "",
                     "", "", "", ""] + [f"{ap_ranks[p]:.2f}" for p in peers] + [""])
    print()
    out = ResultsText()
    default = pyod_odim.ODIM()
    out.add(f"pyod-odim {pyod_odim.__version__}, ODIM defaults (n_estimators={default.n_estimators}, "
            f"n_samples_train={default.n_samples_train}, n_samples_iwae={default.n_samples_iwae}, "
            f"smoothing={default.smoothing}, min_updates={default.min_updates}, "
            f"score_stage={default.score_stage!r}); paper's score: score_stage='paper'; seeds "
            f"0..{args.seeds - 1}; training AUC/AP on all rows, mean over seeds; peers at PyOD "
            "defaults on min-max scaled features, one thread per fit; paper: the ODIM authors' "
            "published per-set results (5 seeds)")
    out.add(markdown_table(
        ["data set", "ODIM AUC", "paper's score AUC", "paper ODIM", "Δ paper", "ODIM AP",
         "paper's score AP"] + [f"{p} AUC" for p in peers] + ["ODIM fit s"], rows))
    if "IForest" in peers and comparable:
        out.add(f"\nIForest, mean of the comparable sets: {mean_of(auc, 'IForest', comparable):.3f} "
                f"here, {np.mean([PAPER_IFOREST_AUC[n] for n in comparable]):.3f} in the paper.")
    if args.write_results:
        write_results("accuracy", out.text())


if __name__ == "__main__":
    main()

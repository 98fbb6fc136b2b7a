"""Fit time of ODIM and side-by-side speed ratios, measured in one run.

    python benchmarks/bench_speed.py [--datasets cardio,thyroid,...] [--quick]

Prints, per dataset, the wall time of one default 10-member fit, the updates
it ran, the share of time in training steps, checks (scoring the selection
set), GMM-2 selection and the final scoring pass, and its training AUC. Then
ratios measured back to back on the same data:

* the vectorized 10-member ensemble against the same 10 members trained one
  after another (``n_estimators=1`` with seeds 0..9);
* eager against TorchScript execution;
* PyOD's VAE and AutoEncoder at their defaults against ODIM.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from _common import load, markdown_table, require_datasets, timed
from pyod_odim import ODIM

DEFAULT_SETS = "cardio,thyroid,pendigits,mammography,shuttle,cover"


def fit_row(name, seed):
    X, y = load(name)
    clf, seconds = timed(ODIM(random_state=seed).fit, X)
    t = clf.timings_
    total = sum(t.values())
    share = {k: 100.0 * v / total for k, v in t.items()}
    return [
        name, f"{X.shape[0]}x{X.shape[1]}", f"{seconds:.1f}", clf.n_updates_,
        f"{share['train']:.0f}%", f"{share['score']:.0f}%", f"{share['gmm']:.0f}%",
        f"{share['final_score']:.0f}%", f"{roc_auc_score(y, clf.decision_scores_):.3f}",
    ]


def vectorized_vs_sequential(X, y):
    _, t_vec = timed(ODIM(random_state=0).fit, X)
    t0 = time.perf_counter()
    seq_scores = [ODIM(n_estimators=1, random_state=s).fit(X).decision_scores_ for s in range(10)]
    t_seq = time.perf_counter() - t0
    auc = roc_auc_score(y, np.mean(seq_scores, axis=0))
    return t_vec, t_seq, auc


def pyod_peers(X):
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.vae import VAE

    out = {}
    for name, make in (("VAE", VAE), ("AutoEncoder", AutoEncoder)):
        try:
            _, out[name] = timed(make(verbose=0).fit, X)
        except TypeError:  # older signatures without verbose
            _, out[name] = timed(make().fit, X)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DEFAULT_SETS)
    parser.add_argument("--ratio-dataset", default="cardio")
    parser.add_argument("--quick", action="store_true", help="skip cover and the peers")
    args = parser.parse_args()
    require_datasets()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}", flush=True)

    names = [n for n in args.datasets.split(",") if not (args.quick and n == "cover")]
    rows = []
    for name in names:
        rows.append(fit_row(name, 0))
        print(" ".join(map(str, rows[-1])), flush=True)
    print()
    print(markdown_table(
        ["dataset", "n x d", "fit s", "updates", "train", "checks", "GMM", "final score",
         "AUC"], rows))

    X, y = load(args.ratio_dataset)
    t_vec, t_seq, seq_auc = vectorized_vs_sequential(X, y)
    ratios = [["10 members one after another / vectorized ensemble",
               f"{t_seq:.1f} / {t_vec:.1f}", f"{t_seq / t_vec:.1f}x"]]
    _, t_eager = timed(ODIM(random_state=0, compile="none").fit, X)
    _, t_script = timed(ODIM(random_state=0, compile="torchscript").fit, X)
    ratios.append(["TorchScript / eager fit", f"{t_script:.1f} / {t_eager:.1f}",
                   f"{t_script / t_eager:.2f}x"])
    if not args.quick:
        _, t_odim = timed(ODIM(random_state=0).fit, X)
        for peer, seconds in pyod_peers(X).items():
            ratios.append([f"PyOD {peer} (defaults) / ODIM", f"{seconds:.1f} / {t_odim:.1f}",
                           f"{seconds / t_odim:.1f}x"])
    print()
    print(f"Ratios on {args.ratio_dataset}, measured back to back in this run "
          f"(sequential members' AUC {seq_auc:.3f}):")
    print(markdown_table(["comparison", "seconds", "ratio"], ratios))


if __name__ == "__main__":
    main()

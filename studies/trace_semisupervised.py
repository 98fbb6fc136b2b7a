"""Training dynamics of semi-supervised ODIM, check by check.

Runs the training loop of :mod:`pyod_odim.training` step by step for a few
members with a fraction of the outliers known and prints, at every check,
for each member: the selection criterion, the ROC-AUC of its losses on the
unlabeled rows, their mean loss under scoring (batch normalization with
running statistics) and, with batch normalization, how far the first
layer's running mean lags behind the mean of the current pre-activations
of the unlabeled rows (root mean square over units, in standard deviations).
This is the trace that located the running-statistics bug (see
docs/decisions.md); run it at commit 1d18e65 to see the bug.

    python studies/trace_semisupervised.py cardio [--fraction 0.3]
        [--seed 0] [--members 4] [--param batch_norm=False]
"""

import argparse
import os
import sys

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MinMaxScaler

# The benchmarks' shared helpers live in ../benchmarks, the package in ..
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "benchmarks"), os.path.join(HERE, "..")]

from _common import load, require_datasets  # noqa: E402
from bench_semisupervised import known_outliers, parse_param  # noqa: E402
from pyod_odim import ODIM  # noqa: E402
from pyod_odim.defaults import training_config  # noqa: E402
from pyod_odim.engines import make_engine  # noqa: E402
from pyod_odim.known_outliers import label_aware_criterion  # noqa: E402
from pyod_odim.training import EnsembleFit  # noqa: E402


def running_mean_lag(params, X):
    """RMS over first-layer units of (batch mean - running mean) / batch sd, per member."""
    if not params["bn_mean"]:
        return np.full(params["enc_w"][0].shape[0], np.nan)
    with torch.no_grad():
        h = torch.matmul(X, params["enc_w"][0]) + params["enc_b"][0]
        mean, sd = h.mean(dim=1, keepdim=True), h.std(dim=1, keepdim=True)
        lag = (mean - params["bn_mean"][0]) / sd
        return lag.pow(2).mean(dim=(1, 2)).sqrt().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    require_datasets()
    torch.set_num_threads(1)
    X, y = load(args.dataset)
    known = known_outliers(y, args.fraction, args.seed)
    params = dict(parse_param(p) for p in args.param)
    clf = ODIM(n_estimators=args.members, use_labels=True, random_state=args.seed, **params)
    arch, config = training_config(clf.get_params(), X, int((known == 0).sum()), 1)
    X_scaled = torch.as_tensor(MinMaxScaler().fit_transform(X), dtype=torch.float32)
    generator = torch.Generator().manual_seed(args.seed)
    engine = make_engine(clf.engine, torch.device("cpu"), arch, config.likelihood,
                         config.cubo_weight, config.cubo_order, 1)
    labeled = known == 1
    fit = EnsembleFit(
        X_scaled, arch, config, generator, engine,
        labeled_index=torch.as_tensor(np.flatnonzero(labeled)),
        selection_criterion=label_aware_criterion(labeled, config.distance, 1),
    )
    rows = fit.selection_index if fit.selection_index is not None else np.arange(len(y))
    unl = ~labeled[rows]
    X_unl = X_scaled[~labeled]
    print(f"{args.dataset}: {int(labeled.sum())} known outliers, engine {engine.name}, "
          f"batch_norm={config.batch_norm}; per member: criterion / AUC unlabeled / "
          "mean loss unlabeled / running-mean lag (sd)")
    while not fit.finished():
        fit.train_until_check()
        losses, criterion = fit.check()
        ids = fit.live.ids
        lag = running_mean_lag(fit.live.detached(), X_unl)
        cells = []
        for j, member in enumerate(ids):
            auc = roc_auc_score(y[rows][unl], losses[j][unl])
            cells.append(f"m{member} {criterion[j]:.3f}/{auc:.3f}/"
                         f"{losses[j][unl].mean():.1f}/{lag[j]:.2f}")
        print(f"update {fit.n_updates:4d}  " + "  ".join(cells), flush=True)
        fit.keep_or_stop(losses, criterion)
    result = fit.result()
    print("best updates:", result.best_update.tolist())


if __name__ == "__main__":
    main()

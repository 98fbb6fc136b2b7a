"""ODIM's cost against PyOD's peers and against its own earlier path, in one run.

    python benchmarks/bench_speed.py [--sections fits,threads,embeddings,embedding_speed,wide,scoring,updates,concurrent,gmm,products,precision]
        [--write-results]

Every figure is measured in this run on this machine; ratios compare
commands run back to back. Sections:

* ``fits``: default fits of small and mid-sized tabular sets (wall seconds,
  median of three, each beside a fit with the paper's score alone,
  ``score_stage="paper"``; share of training updates / checks / final
  scoring, training AUC) beside
  PyOD's VAE (at its defaults) and IForest, and beside ODIM's earlier path
  (eager PyTorch with 50 importance samples in training, ``engine="eager",
  n_samples_train=50``: the package before the C++ kernels).
* ``threads``: default fits of the small sets with ``n_jobs=1`` against
  ``n_jobs=-1`` (every CPU), back to back.
* ``embeddings``: default fits of the two embedding sets (hundreds of
  features) with training AUC beside the PyOD peers at their defaults
  (features min-max scaled, as in ``../shared/baselines``).
* ``embedding_speed``: on every shared embedding set (``--embedding-sets``),
  one thread for everything (``torch.set_num_threads(1)``, ``n_jobs=1``):
  ODIM's default fit, the fit of the defaults before ``likelihood="auto"``
  and the cheaper wide-data checks (``BEFORE``: the Gaussian decoder,
  patience 10, checks on up to 8192 rows, warm-up 100, rate 1e-3), PyOD's
  VAE and AutoEncoder at their defaults and IForest, back to back; fit
  seconds, the ratios of ODIM to VAE and to the earlier fit, and training
  AUC. ``--repeats N`` runs the ODIM and earlier fits N times in turn and
  reports the median seconds and the median of the pairs' ratios.
* ``wide``: the embedding sets with the ODIM authors' wider network for
  more than 500 features, against the default.
* ``scoring``: rows per second of ``decision_function`` on shuttle, C++
  kernels against eager PyTorch.
* ``updates``: median milliseconds of one training update by engine, and
  the one-off compile time of ``torch.compile``.
* ``concurrent``: two single-thread fits (``n_jobs=1``) in two processes at
  once, against one alone.
* ``gmm``: the GMM-2 selector that every check runs, on loss-like rows (a
  lognormal bulk plus a 2 % far tail, fixed seed): scikit-learn's
  ``GaussianMixture(n_components=2)`` fit + ``predict_proba`` per min-max
  normalized row (what a user would write), the package's NumPy fallback,
  and its C++ kernel with OpenMP's default threads and on one thread;
  median milliseconds (``--gmm-quick``: smaller sizes, fewer repeats).

* ``products``: GFLOP/s of one training update's products on the shapes of
  mvtec-ad_bottle's default fit (5 members, batch 128, 5 training samples,
  512 features, the (128, 64) network with latent 32, the rectified
  decoder's 1024 outputs): the kernels' whole update in float32 and with
  ``bf16=True`` (the products' FLOPs over the update's time, so the rest of
  the update counts against them), and PyTorch's batched matmul of the same
  products (forward, weight and input gradients of every layer) in float32
  and in bfloat16 (operands cast beforehand, and with the casts of the
  operands in and of the results out counted); the bfloat16 update's own
  products, timed inside it by the extension's product clock
  (``kernels.product_seconds``), and the same products one at a time
  through ``kernels.bf16_matmul``. One thread, subnormals flushed to zero
  as in a fit; the runs alternate, each a median of 20 calls, over 5
  rounds; the table gives the median of the rounds. A second table sets
  the kernels' products against torch's bfloat16 products both from
  memory and in the cache (torch's and ``bf16_matmul``'s products also
  called 20 times in a row on their operands).
* ``precision``: default fits of every shared embedding set with
  ``precision="float32"`` and ``"bfloat16"`` in turn, one pair per seed
  (``--precision-seeds``, default 0,1,2; medians), beside PyOD's VAE at
  its defaults; one thread.

``--write-results`` also writes each section's table into docs/results.md.
"""

import argparse
import functools
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import MinMaxScaler

from _common import (
    add_results_argument, load, markdown_table, median_seconds, require_datasets, timed,
    write_results,
)
import pyod_odim
from pyod_odim import ODIM, gmm, kernels, network
from pyod_odim._device import cpu_fast_math
from pyod_odim._threads import torch_threads
from pyod_odim.engines import Batch, KernelEngine, TorchEngine
from pyod_odim.training import LiveMembers

SECTIONS = ("fits", "threads", "embeddings", "embedding_speed", "wide", "scoring", "updates",
            "concurrent", "gmm", "products", "precision")
# The sections with a table on docs/results.md (written by --write-results).
RESULTS_SECTIONS = ("fits", "threads", "embedding_speed", "scoring", "updates", "concurrent", "gmm",
                    "products", "precision")
# The ODIM authors' network above 500 features, against the default (128, 64).
WIDE = dict(hidden_sizes=(512, 256), latent_dim=128)
FIT_SETS = "wbc,cardio,thyroid,mammography,shuttle"
EMBEDDING_SETS = "mvtec-ad_bottle,20news_3"
EARLIER = dict(engine="eager", n_samples_train=50)
# Every shared embedding set, and the defaults the embedding-speed work started from.
ALL_EMBEDDING_SETS = ("mvtec-ad_bottle,mvtec-ad_screw,mvtec-ad_carpet,cifar10_0,svhn_0,"
                      "mvtec-ad_carpet_vit,20news_3")
BEFORE = dict(likelihood="gaussian", patience=10, selection_size=8192, min_updates=100, lr=1e-3)


def auc(y, scores):
    return f"{roc_auc_score(y, scores):.3f}"


def peer(name):
    """A PyOD detector at its defaults (deep ones quiet)."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.deep_svdd import DeepSVDD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF
    from pyod.models.ocsvm import OCSVM
    from pyod.models.vae import VAE

    makers = {
        "IForest": lambda: IForest(random_state=0), "KNN": KNN, "LOF": LOF, "ECOD": ECOD,
        "OCSVM": OCSVM, "AutoEncoder": lambda: AutoEncoder(verbose=0, random_state=0),
        "VAE": lambda: VAE(verbose=0, random_state=0),
        "DeepSVDD": lambda n_features: DeepSVDD(n_features=n_features, verbose=0, random_state=0),
    }
    return makers[name]


def fit_peer(name, X):
    make = peer(name)
    clf = make(X.shape[1]) if name == "DeepSVDD" else make()
    return timed(clf.fit, X)


def warm_up(X):
    """Pay the process's one-off costs (imports, first kernel calls) untimed."""
    ODIM(random_state=0, n_jobs=-1, max_updates=20).fit(X)
    ODIM(random_state=0, max_updates=20, **EARLIER).fit(X)


def paired_fits(X, pairs):
    """Default fits against the paper's score (``score_stage="paper"``), in turn.

    Returns the last default fit, the median seconds of each and the median
    of the pairs' ratios (default / paper's score).
    """
    default_s, paper_s, ratios = [], [], []
    for _ in range(pairs):
        clf, t_default = timed(ODIM(random_state=0).fit, X)
        _, t_paper = timed(ODIM(random_state=0, score_stage="paper").fit, X)
        default_s.append(t_default)
        paper_s.append(t_paper)
        ratios.append(t_default / t_paper)
    return clf, statistics.median(default_s), statistics.median(paper_s), statistics.median(ratios)


def section_fits(names, pairs=3):
    rows = []
    warm_up(load(names[0])[0])
    for name in names:
        X, y = load(name)
        clf, t_odim, t_paper, ratio = paired_fits(X, pairs)
        t = clf.timings_
        total = sum(t.values())
        _, t_earlier = timed(ODIM(random_state=0, **EARLIER).fit, X)
        vae, t_vae = fit_peer("VAE", X)
        iforest, t_if = fit_peer("IForest", X)
        rows.append([
            name, f"{X.shape[0]}x{X.shape[1]}", f"{t_odim:.1f}", f"{t_paper:.1f}",
            f"{ratio:.2f}", clf.n_updates_,
            f"{100 * t['train'] / total:.0f}/{100 * (t['score'] + t['gmm']) / total:.0f}/"
            f"{100 * t['final_score'] / total:.0f}",
            auc(y, clf.decision_scores_), f"{t_earlier:.1f}", f"{t_earlier / t_odim:.1f}x",
            f"{t_vae:.1f}", f"{t_odim / t_vae:.2f}", auc(y, vae.decision_scores_), f"{t_if:.2f}",
        ])
        print(" ".join(map(str, rows[-1])), flush=True)
    note = (f"ODIM fit s: median of {pairs} default fits; paper's score: median of {pairs} fits "
            "with `score_stage=\"paper\"`, run in turn with them; stage cost: median of the "
            "pairs' ratios. The other columns are from the last default fit and one fit each.\n\n")
    return note + markdown_table(
        ["dataset", "n x d", "ODIM fit s", "paper's score s", "stage cost", "updates",
         "train/checks/final %", "ODIM AUC", "earlier path s", "speed-up", "VAE fit s",
         "ODIM / VAE", "VAE AUC", "IForest s"], rows)


def section_threads(names):
    rows = []
    for name in names:
        X, y = load(name)
        warm_up(X)
        one, t_one = timed(ODIM(random_state=0, n_jobs=1).fit, X)
        every, t_every = timed(ODIM(random_state=0, n_jobs=-1).fit, X)
        same = "yes" if (one.decision_scores_ == every.decision_scores_).all() else "no"
        rows.append([name, f"{X.shape[0]}x{X.shape[1]}", f"{t_one:.1f}", f"{t_every:.1f}",
                     f"{t_one / t_every:.2f}x", same])
        print(" ".join(map(str, rows[-1])), flush=True)
    return markdown_table(["dataset", "n x d", "n_jobs=1 s", f"n_jobs=-1 ({os.cpu_count()} CPUs) s",
                           "speed-up", "same scores"], rows)


def section_embeddings(names):
    peers = ("IForest", "KNN", "LOF", "ECOD", "OCSVM", "AutoEncoder", "VAE", "DeepSVDD")
    rows = []
    for name in names:
        X, y = load(name)
        clf, t_odim = timed(ODIM(random_state=0).fit, X)
        row = [name, f"{X.shape[0]}x{X.shape[1]}", f"{t_odim:.1f}", auc(y, clf.decision_scores_)]
        Xs = MinMaxScaler().fit_transform(X)
        for p in peers:
            det, seconds = fit_peer(p, Xs)
            row.append(f"{auc(y, det.decision_scores_)} ({seconds:.1f} s)")
        rows.append(row)
        print(" ".join(map(str, row)), flush=True)
    return markdown_table(["dataset", "n x d", "ODIM fit s", "ODIM AUC"]
                          + [f"{p} AUC (fit s)" for p in peers], rows)


def section_embedding_speed(names, repeats=1):
    rows = []
    with torch_threads(1):
        first = MinMaxScaler().fit_transform(load(names[0])[0][:300])
        warm_up(first)
        for p in ("VAE", "AutoEncoder", "IForest"):  # their one-off costs too
            fit_peer(p, first)
        for name in names:
            X, y = load(name)
            # ODIM and BEFORE in turn, ``repeats`` pairs: the ratio is taken
            # pair by pair (each fit repeats exactly), then its median.
            pairs = []
            for _ in range(repeats):
                clf, t_odim = timed(ODIM(random_state=0, n_jobs=1).fit, X)
                before, t_before = timed(ODIM(random_state=0, n_jobs=1, **BEFORE).fit, X)
                pairs.append((t_odim, t_before, t_odim / t_before))
            t_odim, t_before, ratio = (statistics.median(col) for col in zip(*pairs))
            Xs = MinMaxScaler().fit_transform(X)
            vae, t_vae = fit_peer("VAE", Xs)
            ae, t_ae = fit_peer("AutoEncoder", Xs)
            forest, t_if = fit_peer("IForest", Xs)
            rows.append([
                name, f"{X.shape[0]}x{X.shape[1]}", clf.likelihood_, f"{t_odim:.1f}",
                clf.n_updates_, f"{t_before:.1f}", before.n_updates_,
                f"{ratio:.2f}x", f"{t_vae:.1f}",
                f"{t_odim / t_vae:.1f}x", f"{t_ae:.1f}", f"{t_if:.2f}",
                auc(y, clf.decision_scores_), auc(y, before.decision_scores_),
                auc(y, vae.decision_scores_),
            ])
            print(" ".join(map(str, rows[-1])), flush=True)
    return markdown_table(
        ["dataset", "n x d", "likelihood_", "ODIM fit s", "updates", "before s",
         "before updates", "ODIM / before", "VAE fit s", "ODIM / VAE", "AutoEncoder s",
         "IForest s", "ODIM AUC", "before AUC", "VAE AUC"], rows)


def section_wide(names):
    rows = []
    for name in names:
        X, y = load(name)
        for label, params in (("default (128, 64), latent 32", {}),
                              ("authors' (512, 256), latent 128", WIDE)):
            clf, seconds = timed(ODIM(random_state=0, **params).fit, X)
            rows.append([name, label, f"{seconds:.1f}", clf.n_updates_,
                         auc(y, clf.decision_scores_)])
            print(" ".join(map(str, rows[-1])), flush=True)
    return markdown_table(["dataset", "network", "fit s", "updates", "AUC"], rows)


def section_scoring():
    """decision_function on shuttle: the earlier eager path on two threads (as
    it ran with PyTorch's default pool) against the kernels on one and two."""
    X, _ = load("shuttle")
    clf = ODIM(random_state=0).fit(X)
    rows, timings = [], {}
    for mode, n_jobs in (("eager", 2), ("kernel", 1), ("kernel", 2)):
        clf.set_params(engine=mode, n_jobs=n_jobs)
        clf.decision_function(X[:1000])
        seconds = statistics.median(timed(clf.decision_function, X)[1] for _ in range(3))
        timings[(mode, n_jobs)] = seconds
        rows.append([mode, n_jobs, X.shape[0], f"{seconds:.2f}", f"{X.shape[0] / seconds:,.0f}",
                     f"{timings[('eager', 2)] / seconds:.1f}x"])
    return markdown_table(["decision_function", "n_jobs", "rows", "s (median of 3)", "rows / s",
                           "vs eager, 2 threads"], rows)


def median_update_ms(engine, live, batch, repeats=20):
    for _ in range(3):
        engine.update(live, batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        engine.update(live, batch)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def section_updates():
    rows = []
    cpu = torch.device("cpu")
    for d in (21, 512):
        hidden, latent = network.default_architecture(d)
        arch = network.Architecture(d, hidden, latent)
        for k in (10, 50):
            gen = torch.Generator().manual_seed(0)
            x = torch.rand((10, 128, d), generator=gen)
            eps = torch.randn((10, k, 128, latent), generator=gen)
            cells = [d, k]
            engines = [TorchEngine("gaussian"), TorchEngine("gaussian", compiled=True)]
            if kernels.AVAILABLE:
                engines.insert(0, KernelEngine("gaussian"))
            for engine in engines:
                live = LiveMembers(network.init_parameters(arch, 10, gen, cpu, "gaussian", True), 1e-3)
                t0 = time.perf_counter()
                engine.update(live, Batch(x, eps))
                first = time.perf_counter() - t0
                ms = median_update_ms(engine, live, Batch(x, eps), repeats=10 if d > 100 else 20)
                cells.append(f"{ms:.1f}" + (f" (first call {first:.0f} s)"
                                            if engine.name == "inductor" else ""))
            rows.append(cells)
            print(" ".join(map(str, cells)), flush=True)
    header = ["d", "K_train"] + (["kernel ms"] if kernels.AVAILABLE else []) + [
        "eager ms", "inductor ms"]
    return markdown_table(header, rows)


def update_products(d=512, members=5, batch=128, samples=5, likelihood="rectified"):
    """(members, m, k, n) of every product of one update of the default wide network."""
    hidden, latent = network.default_architecture(d)
    outputs = d if likelihood == "bernoulli" else 2 * d
    enc = list(zip((d,) + hidden, hidden + (2 * latent,)))
    dec = list(zip((latent,) + hidden[::-1], hidden[::-1] + (outputs,)))
    shapes = []
    for layers, rows, first_needs_input_grad in ((enc, batch, False),
                                                  (dec, batch * samples, True)):
        for i, (n_in, n_out) in enumerate(layers):
            shapes.append((members, rows, n_in, n_out))      # forward
            shapes.append((members, n_in, rows, n_out))      # weight gradient
            if i or first_needs_input_grad:
                shapes.append((members, rows, n_out, n_in))  # input gradient
    return shapes


CLOCKED = "kernels, bfloat16 update: its products"
ALONE = "kernels, bfloat16 products alone"
ALONE_CACHED = "kernels, bfloat16 products alone, in the cache"
TORCH = "torch bmm bfloat16"
TORCH_CACHED = "torch bmm bfloat16, in the cache"


def section_products(rounds=5, calls=20):
    """GFLOP/s of one update's products: the kernels against torch's matmul."""
    shapes = update_products()
    flops = sum(2 * m * a * b * c for m, a, b, c in shapes)
    gen = torch.Generator().manual_seed(0)
    hidden, latent = network.default_architecture(512)
    arch = network.Architecture(512, hidden, latent)
    params = network.init_parameters(arch, 5, gen, torch.device("cpu"), "rectified", True)
    for name in network.TRAINABLE:
        for t in params[name]:
            t.requires_grad_(True)
    x = torch.rand((5, 128, 512), generator=gen)
    eps = torch.randn((5, 5, 128, latent), generator=gen)
    f32 = [(torch.randn(m, a, b, generator=gen), torch.randn(m, b, c, generator=gen))
           for m, a, b, c in shapes]
    b16 = [(a.bfloat16(), b.bfloat16()) for a, b in f32]

    def kernel(bf16):
        return lambda: kernels.train_step(params, x, eps, "rectified", bf16=bf16)

    def matmuls(pairs, cast=False):
        def run():
            for a, b in pairs:
                if cast:
                    torch.bmm(a.bfloat16(), b.bfloat16()).float()
                else:
                    torch.bmm(a, b)
        return run

    members = [[(a[i].numpy(), b[i].numpy()) for i in range(a.shape[0])] for a, b in f32]

    def kernel_products():
        for pairs in members:
            for a, b in pairs:
                kernels.bf16_matmul(a, b)

    def clocked_products():
        # The update's own products, timed by the extension's product clock.
        return statistics.median(kernels.product_seconds(kernel(True)) for _ in range(calls))

    def repeated(products):
        # Each product `calls` times in a row on its operands (after one call).
        def run():
            total = 0.0
            for product in products:
                product()
                total += median_seconds(product, calls)
            return total
        return run

    def wall(run):
        return lambda: median_seconds(run, calls)

    # Every figure is timed by its own callable, all of them in turn in
    # every round, so that the machine's changing speed touches them alike.
    timers = {"kernels, float32 update": wall(kernel(False))}
    if kernels.bf16_units():
        timers["kernels, bfloat16 update"] = wall(kernel(True))
        timers[CLOCKED] = clocked_products
        timers[ALONE] = wall(kernel_products)
    timers.update({"torch bmm float32": wall(matmuls(f32)), TORCH: wall(matmuls(b16)),
                   "torch bmm bfloat16 with casts": wall(matmuls(f32, cast=True))})
    if kernels.bf16_units():
        timers[ALONE_CACHED] = repeated(
            [functools.partial(kernels.bf16_matmul, a, b) for pairs in members for a, b in pairs])
        timers[TORCH_CACHED] = repeated([functools.partial(torch.bmm, a, b) for a, b in b16])
    seconds = {label: [] for label in timers}
    # Subnormals flushed, as in a fit (pyod_odim._device.cpu_fast_math).
    with torch_threads(1), cpu_fast_math(torch.device("cpu")):
        for timer in timers.values():
            timer()
        for _ in range(rounds):
            for label, timer in timers.items():
                seconds[label].append(timer())
    best = {label: statistics.median(v) for label, v in seconds.items()}
    rows = [[label, f"{1e3 * t:.2f}", f"{flops / t / 1e9:.0f}", f"{t / best[TORCH]:.2f}x"]
            for label, t in best.items() if label not in (ALONE_CACHED, TORCH_CACHED)]
    note = (f"{len(shapes)} products, {flops / 1e9:.2f} GFLOP per update. An update's time "
            "is the whole update (products and everything else); \"its products\" is the "
            "part of the bfloat16 update spent in its products, as they run in it "
            "(`kernels.product_seconds`: the rounding and packing of their operands "
            "included, the likelihood and the rest of the update not); \"products alone\" "
            "runs the same products one member at a time through the kernels' standalone "
            "bfloat16 product, `bf16_matmul` (operand rounding and packing included, from "
            "float32 row-major operands, one call each, each writing its whole float32 "
            f"result). Every row is the median of {rounds} rounds, all rows timed in turn "
            "in each round.\n\n")
    table = markdown_table(["what", f"ms (median of {rounds} rounds)", "GFLOP/s",
                            "time / torch bf16 bmm"], rows)
    if not kernels.bf16_units():
        return note + table
    return note + table + "\n\n" + _products_against_torch(best, calls)


def _products_against_torch(best, calls):
    """The kernels' bfloat16 products against torch's, from memory and in the cache.

    "From memory": each product once per call of the whole set, so that
    its operands (49 MB of float32 for the kernels, half that pre-cast for
    PyTorch) come from memory; "in the cache": each product ``calls``
    times in a row on the same operands, the medians added up. In an
    update each layer's operands were just written; its own products (the
    product clock) are set against both of torch's figures.
    """
    torch_memory, torch_cache = best[TORCH], best[TORCH_CACHED]
    rows = [[name, f"{1e3 * t:.2f}", f"{t / torch_memory:.2f}x", f"{t / torch_cache:.2f}x"]
            for name, t in (
                ("the update's own (product clock, as they run in the update)", best[CLOCKED]),
                ("`bf16_matmul`, operands from memory", best[ALONE]),
                (f"`bf16_matmul`, operands in the cache (each product {calls} times in a row)",
                 best[ALONE_CACHED]))]
    return markdown_table(["kernels' bfloat16 products", "ms",
                           f"/ torch bmm bfloat16 from memory ({1e3 * torch_memory:.2f} ms)",
                           f"/ torch bmm bfloat16 in the cache ({1e3 * torch_cache:.2f} ms)"],
                          rows)


def section_precision(names, seeds=(0, 1, 2)):
    """Default fits in float32 and bfloat16 beside PyOD's VAE, one thread.

    One pair of fits per seed: the two precisions train different numbers
    of updates (each stops by its own checks), so a single seed's ratio
    moves with where each fit happened to stop; the table gives the
    median over the seeds, the range of the pairs' ratios and the ratio
    of seconds per update.
    """
    rows = []
    with torch_threads(1):
        first = MinMaxScaler().fit_transform(load(names[0])[0][:300])
        warm_up(first)
        ODIM(random_state=0, max_updates=20, precision="bfloat16").fit(load(names[0])[0])
        fit_peer("VAE", first)
        for name in names:
            X, y = load(name)
            runs = []
            for seed in seeds:
                f32, t32 = timed(ODIM(random_state=seed, n_jobs=1, precision="float32").fit, X)
                b16, t16 = timed(ODIM(random_state=seed, n_jobs=1, precision="bfloat16").fit, X)
                per_update = (t32 / f32.n_updates_) / (t16 / b16.n_updates_)
                runs.append((t32, t16, t32 / t16, f32.n_updates_, b16.n_updates_, per_update,
                             roc_auc_score(y, f32.decision_scores_),
                             roc_auc_score(y, b16.decision_scores_)))
            columns = list(zip(*runs))
            t32, t16, ratio, per_update = (statistics.median(columns[i]) for i in (0, 1, 2, 5))
            updates32, updates16, auc32, auc16 = (
                statistics.mean(columns[i]) for i in (3, 4, 6, 7))
            ratios = columns[2]
            vae, t_vae = fit_peer("VAE", MinMaxScaler().fit_transform(X))
            rows.append([name, f"{X.shape[0]}x{X.shape[1]}", f"{t32:.1f}", f"{t16:.1f}",
                         b16.precision_, f"{ratio:.2f}x",
                         f"{min(ratios):.2f}-{max(ratios):.2f}x",
                         f"{updates32:.0f} / {updates16:.0f}", f"{per_update:.2f}x",
                         f"{t_vae:.1f}", f"{t16 / t_vae:.1f}x", f"{t32 / t_vae:.1f}x",
                         f"{auc32:.3f}", f"{auc16:.3f}", auc(y, vae.decision_scores_)])
            print(" ".join(map(str, rows[-1])), flush=True)
    note = (f"Seeds {', '.join(map(str, seeds))}: one float32 and one bfloat16 fit per seed, "
            "in turn; fit seconds and speed-up: medians over the seeds (the speed-up is "
            "the median of the seeds' ratios, its range beside it); updates and AUCs: means; "
            "per update: the median ratio of fit seconds per update (checks and final "
            "scoring included). VAE: one fit at PyOD's defaults.\n\n")
    return note + markdown_table(
        ["dataset", "n x d", "float32 fit s", "bfloat16 fit s", "precision_", "speed-up",
         "range", "updates f32 / bf16", "per update", "VAE fit s", "bf16 / VAE",
         "f32 / VAE", "float32 AUC", "bfloat16 AUC", "VAE AUC"],
        rows)


def _fit_cardio(queue):
    X, _ = load("cardio")
    t0 = time.perf_counter()
    ODIM(random_state=0, n_jobs=1).fit(X)
    queue.put(time.perf_counter() - t0)


def section_concurrent():
    ctx = mp.get_context("spawn")

    def run(n):
        queue = ctx.Queue()
        procs = [ctx.Process(target=_fit_cardio, args=(queue,)) for _ in range(n)]
        for p in procs:
            p.start()
        out = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        return out

    alone = run(1)[0]
    together = run(2)
    rows = [["one fit alone", f"{alone:.1f}", "1.00"]]
    rows += [[f"fit {i + 1} of two at once", f"{s:.1f}", f"{s / alone:.2f}"]
             for i, s in enumerate(together)]
    return markdown_table(["cardio, n_jobs=1", "s", "/ alone"], rows)


# GMM-2 sizes (rows n, members M) of the gmm section.
GMM_SIZES = [(2000, 1), (2000, 10), (50000, 1), (50000, 10), (300000, 1), (300000, 10)]
GMM_QUICK_SIZES = GMM_SIZES[:4]


def loss_like_rows(m, n, seed=0):
    """(m, n) losses: lognormal bulk plus a 2 % tail far above it."""
    rng = np.random.default_rng(seed)
    n_tail = max(1, n // 50)
    bulk = rng.lognormal(0.0, 0.5, size=(m, n - n_tail))
    tail = rng.normal(8.0, 1.0, size=(m, n_tail))
    return np.concatenate([bulk, tail], axis=1)


def sklearn_gmm_rows(losses):
    """Per-row scikit-learn fit + predict_proba on min-max normalized rows."""
    for row in losses:
        x = ((row - row.min()) / (row.max() - row.min()))[:, None]
        GaussianMixture(n_components=2).fit(x).predict_proba(x)


def gmm_repeats(n, m, slow, quick):
    """Fewer repeats for big inputs, fewest for the slow (scikit-learn, NumPy) runs."""
    work = n * m
    if slow:
        base = 1 if work >= 1_000_000 else 3 if work >= 100_000 else 5
    else:
        base = 3 if work >= 1_000_000 else 7 if work >= 100_000 else 15
    return max(1, base // 2) if quick else base


def median_ms(fn, repeats):
    """Median milliseconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    return 1e3 * median_seconds(fn, repeats)


def section_gmm(quick=False):
    """The GMM-2 selector: scikit-learn against the NumPy fallback and the C++ kernel."""
    if gmm.BACKEND == "cpp":
        from pyod_odim import _gmm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = []
        for n, m in GMM_QUICK_SIZES if quick else GMM_SIZES:
            losses = loss_like_rows(m, n)
            slow = gmm_repeats(n, m, True, quick)
            sk = median_ms(lambda: sklearn_gmm_rows(losses), slow)
            npy = median_ms(lambda: gmm.fit_gmm2(losses, backend="numpy"), slow)
            row = [n, m, f"{sk:.2f}", f"{npy:.2f}"]
            if gmm.BACKEND == "cpp":
                fast = gmm_repeats(n, m, False, quick)
                cpp = median_ms(lambda: gmm.fit_gmm2(losses, backend="cpp"), fast)
                cpp1 = median_ms(lambda: _gmm.fit(losses, 1e-3, 100, 1e-6, "sigma", 1), fast)
                row += [f"{cpp:.2f}", f"{cpp1:.2f}", f"{sk / cpp:.1f}x", f"{npy / cpp:.1f}x"]
            else:
                row += ["-"] * 4
            rows.append(row)
            print(" ".join(map(str, row)), flush=True)
    header = f"backend {gmm.BACKEND}"
    if gmm.BACKEND == "cpp":
        header += (f", OpenMP {_gmm.openmp} ({_gmm.default_threads()} threads), "
                   f"E-step {_gmm.pack_kind()}")
    return header + "; median ms\n\n" + markdown_table(
        ["n", "M", "sklearn ms", "NumPy ms", "C++ ms", "C++ 1 thread ms", "sklearn / C++",
         "NumPy / C++"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--datasets", default=FIT_SETS)
    parser.add_argument("--embeddings", default=EMBEDDING_SETS)
    parser.add_argument("--embedding-sets", default=ALL_EMBEDDING_SETS,
                        help="data sets of the embedding_speed section")
    parser.add_argument("--small", default="wbc,cardio", help="data sets of the threads section")
    parser.add_argument("--repeats", type=int, default=1,
                        help="embedding_speed: ODIM / before pairs per set (medians reported)")
    parser.add_argument("--precision-seeds", default="0,1,2",
                        help="precision: one float32 / bfloat16 pair of fits per seed")
    parser.add_argument("--gmm-quick", action="store_true",
                        help="gmm: smaller sizes, fewer repeats")
    add_results_argument(parser)
    args = parser.parse_args()
    require_datasets()
    # ODIM bounds its own threads (n_jobs=1 by default); the PyOD peers run
    # with PyTorch's default pool, as a user would get them.
    default = ODIM()
    setup = (f"pyod-odim {pyod_odim.__version__}, torch {torch.__version__}, "
             f"numpy {np.__version__}, {os.cpu_count()} CPUs, kernels {kernels.ISA}; "
             f"{time.strftime('%Y-%m-%d')}")
    print(f"pyod-odim {pyod_odim.__version__}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, kernels {kernels.ISA}; ODIM defaults: "
          f"n_estimators={default.n_estimators!r} (10 members, 5 above 256 features), "
          f"n_samples_iwae={default.n_samples_iwae}, "
          f"n_samples_train={default.n_samples_train!r}, engine={default.engine!r}, "
          f"n_jobs={default.n_jobs}; seed 0; {time.strftime('%Y-%m-%d')}", flush=True)
    sections = args.sections.split(",")
    out = []
    if "fits" in sections:
        out.append(("fits", "Tabular fits", section_fits(args.datasets.split(","))))
    if "threads" in sections:
        out.append(("threads", "Threads", section_threads(args.small.split(","))))
    if "embeddings" in sections:
        out.append(("embeddings", "Embedding sets",
                    section_embeddings(args.embeddings.split(","))))
    if "embedding_speed" in sections:
        out.append(("embedding_speed", "Embedding sets, one thread, beside PyOD's VAE",
                    section_embedding_speed(args.embedding_sets.split(","), args.repeats)))
    if "wide" in sections:
        out.append(("wide", "Network width on the embedding sets",
                    section_wide(args.embeddings.split(","))))
    if "scoring" in sections:
        out.append(("scoring", "Scoring throughput (shuttle)", section_scoring()))
    if "updates" in sections:
        # Subnormals flushed, as in a fit (pyod_odim._device.cpu_fast_math): after a
        # few updates on one repeated batch, unflushed subnormals slowed every
        # engine's update at d = 512 about fivefold.
        with torch_threads(1), cpu_fast_math(torch.device("cpu")):
            out.append(("updates", "One training update, 10 members, batch 128, one thread",
                        section_updates()))
    if "concurrent" in sections:
        out.append(("concurrent", "Concurrent fits", section_concurrent()))
    if "gmm" in sections:
        out.append(("gmm", "GMM-2 selector", section_gmm(args.gmm_quick)))
    if "products" in sections:
        out.append(("products", "One update's products, mvtec-ad_bottle's shapes, one thread",
                    section_products()))
    if "precision" in sections:
        out.append(("precision", "Embedding sets in float32 and bfloat16, one thread",
                    section_precision(args.embedding_sets.split(","),
                                      [int(v) for v in args.precision_seeds.split(",")])))
    for _, title, table in out:
        print(f"\n{title}\n\n{table}")
    if args.write_results:
        for section, _, table in out:
            if section in RESULTS_SECTIONS:
                write_results(f"speed-{section}", f"{setup}\n\n{table}")


if __name__ == "__main__":
    sys.exit(main())

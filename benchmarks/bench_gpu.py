"""ODIM on a CUDA GPU: update time against the launch floor, scoring
throughput, and default fits with their AUC, printed in one run.

    python benchmarks/bench_gpu.py [--device cuda] [--datasets ...] [--quick]

1. Per-update time (median of timed updates after warm-up) of the eager and
   the compiled (``torch.compile``) update of a 10-member ensemble, beside
   the replay time of an empty captured CUDA graph: the floor that kernel
   launches alone cost.
2. Scoring throughput of ``decision_function`` in member-rows x K per
   second, eager and compiled.
3. Default 10-member fits (``engine`` eager and inductor) of cardio,
   shuttle, cover and the two embedding sets, with training AUC.

``--device cpu`` runs the same script on the CPU (without the graph line),
which is how it is checked where no GPU is present.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from _common import (
    ResultsText, add_results_argument, load, markdown_table, require_datasets, write_results,
)
from pyod_odim import ODIM, network
from pyod_odim.engines import Batch, TorchEngine
from pyod_odim.training import LiveMembers

DEFAULT_SETS = "cardio,shuttle,cover,mvtec-ad_bottle,20news_3"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def empty_graph_replay(device):
    """Seconds per replay of a captured graph holding one tiny kernel."""
    x = torch.zeros(1, device=device)
    stream = torch.cuda.Stream(device)
    with torch.cuda.stream(stream):
        x.add_(1.0)  # warm-up outside the capture
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        x.add_(1.0)
    return median_seconds(graph.replay, device, repeats=200, warmup=10)


def update_timings(d, device, repeats, n_samples_train=10):
    """Median seconds per update, eager and compiled, for d features."""
    hidden, latent = network.default_architecture(d)
    arch = network.Architecture(d, hidden, latent)
    out = {}
    for compiled in (False, True):
        gen = torch.Generator(device=device).manual_seed(0)
        live = LiveMembers(network.init_parameters(arch, 10, gen, device, "gaussian", True), 1e-3)
        engine = TorchEngine("gaussian", compiled=compiled)
        x = torch.rand((10, 128, d), generator=gen, device=device)
        eps = torch.randn((10, n_samples_train, 128, latent), generator=gen, device=device)
        batch = Batch(x, eps)
        t0 = time.perf_counter()
        engine.update(live, batch)  # compiles on the first call
        sync(device)
        first = time.perf_counter() - t0
        out[engine.name] = (median_seconds(lambda: engine.update(live, batch), device, repeats),
                            first)
    return out


def scoring_throughput(X, device, engine_mode):
    clf = ODIM(n_estimators=10, max_updates=20, check_every=10, min_updates=0,
               device=str(device), engine=engine_mode, random_state=0).fit(X[:2048])
    clf.decision_function(X[:4096])  # warm-up (and compilation)
    sync(device)
    t0 = time.perf_counter()
    clf.decision_function(X)
    sync(device)
    seconds = time.perf_counter() - t0
    return 10 * clf.n_samples_iwae * X.shape[0] / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--datasets", default=DEFAULT_SETS)
    parser.add_argument("--quick", action="store_true", help="updates and scoring only")
    add_results_argument(parser)
    args = parser.parse_args()
    require_datasets()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out = ResultsText()
    out.add(f"{time.strftime('%Y-%m-%d')}, device {name}, torch {torch.__version__}")

    rows = []
    if device.type == "cuda":
        floor = empty_graph_replay(device)
        rows.append(["empty captured graph (launch floor)", "-", f"{floor * 1e3:.3f}", "-"])
    for d in (21, 512):
        for engine, (seconds, first) in update_timings(d, device, repeats=20).items():
            rows.append([f"update, {engine}", d, f"{seconds * 1e3:.2f}", f"{first:.1f}"])
    out.add(markdown_table(["what", "d", "ms per update (median)", "first call s"], rows))

    X, _ = load("shuttle")
    rows = []
    for mode in ("eager", "inductor"):
        rate, seconds = scoring_throughput(X, device, mode)
        rows.append([mode, X.shape[0], f"{seconds:.2f}", f"{rate / 1e6:.1f}"])
    out.add()
    out.add(markdown_table(["scoring", "rows", "s", "M member-rows x K / s"], rows))
    if args.quick:
        if args.write_results:
            write_results("gpu", out.text())
        return

    rows = []
    for name_ in args.datasets.split(","):
        X, y = load(name_)
        for mode in ("eager", "inductor"):
            t0 = time.perf_counter()
            clf = ODIM(device=str(device), engine=mode, random_state=0).fit(X)
            seconds = time.perf_counter() - t0
            rows.append([name_, f"{X.shape[0]}x{X.shape[1]}", mode, f"{seconds:.1f}",
                         clf.n_updates_, f"{roc_auc_score(y, clf.decision_scores_):.3f}"])
            print(" ".join(map(str, rows[-1])), flush=True)
    out.add()
    out.add(markdown_table(["dataset", "n x d", "engine", "fit s", "updates", "AUC"], rows))
    out.add(f"\nODIM defaults (10 members, n_samples_iwae={ODIM().n_samples_iwae}, "
            f"n_samples_train={ODIM().n_samples_train}), seed 0; "
            f"training AUC on all rows; {np.__name__} {np.__version__}")
    if args.write_results:
        write_results("gpu", out.text())


if __name__ == "__main__":
    main()

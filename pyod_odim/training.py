"""The ODIM update loop: train briefly, check often, keep the best checkpoint.

Every ``check_every`` updates the per-row losses of the selection set are
scored for every member, a two-component Gaussian mixture is fitted to each
member's min-max normalized losses, and the distance between its components
measures how well inliers and outliers are separated at that moment. Each
member keeps the parameters (and selection-set losses) of its own largest
distance and stops after ``patience`` checks without a new maximum.
"""

import time
import warnings
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from . import network
from .gmm import fit_gmm2

# Elements of the widest (M, K, rows, width) activation per scoring chunk:
# small enough to stay near the CPU caches, large enough to feed a GPU.
_CHUNK_ELEMENTS = {"cpu": 1_000_000, "cuda": 256_000_000}


class TrainingConfig(NamedTuple):
    """Hyper-parameters of one ensemble fit (see :class:`pyod_odim.ODIM`)."""

    n_members: int
    n_samples: int
    batch_size: int
    lr: float
    check_every: int
    patience: int
    max_updates: int
    selection_size: Optional[int]
    distance: str
    bernoulli: bool
    batch_norm: bool = False
    min_updates: int = 0
    cubo_weight: float = 1.0
    cubo_order: float = 2.0


class TrainingResult(NamedTuple):
    """What a fit leaves behind.

    Attributes
    ----------
    params : dict of str to list of Tensor
        Each member's parameters at its best check.
    score_eps : Tensor of shape (M, K, 1, L)
        The fixed importance draws used for every scoring pass.
    train_losses : ndarray of shape (M, n) or None
        Best-checkpoint losses of all rows when the selection set was all
        rows, else ``None`` (the caller scores them once).
    check_updates : ndarray of shape (n_checks,)
    check_distances : ndarray of shape (n_checks, M)
        GMM distance of each member at each check; NaN once it stopped.
    best_update : ndarray of shape (M,)
    best_distance : ndarray of shape (M,)
    n_updates : int
    selection_index : ndarray or None
        Rows of the selection subset, ``None`` when all rows were used.
    timings : dict of str to float
        Seconds spent in ``"train"``, ``"score"`` and ``"gmm"``.
    """

    params: dict
    score_eps: torch.Tensor
    train_losses: Optional[np.ndarray]
    check_updates: np.ndarray
    check_distances: np.ndarray
    best_update: np.ndarray
    best_distance: np.ndarray
    n_updates: int
    selection_index: Optional[np.ndarray]
    timings: dict


def _chunk_rows(params, score_eps, device):
    """Rows per scoring chunk under the device's activation budget."""
    n_members, n_samples = score_eps.shape[:2]
    widest = max(w.shape[-1] for w in params["enc_w"] + params["dec_w"])
    budget = _CHUNK_ELEMENTS["cuda" if device.type == "cuda" else "cpu"]
    rows = budget // max(1, n_members * n_samples * widest)
    return int(min(max(rows, 16), 1 << 20))


def score_rows(log_weights_fn, params, X, score_eps, bernoulli):
    """Negative IWAE bound of every row for every member.

    Parameters
    ----------
    log_weights_fn : callable
        Eager or scripted :func:`pyod_odim.network.log_importance_weights`.
    params : dict
        Detached parameters, first axis ``M``.
    X : Tensor of shape (n, d)
    score_eps : Tensor of shape (M, K, 1, L)
        Shared draws: a row's score does not depend on its neighbours.
    bernoulli : bool

    Returns
    -------
    losses : Tensor of shape (M, n), float32, on X's device
    """
    chunk = _chunk_rows(params, score_eps, X.device)
    out = []
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            log_w = _call_log_weights(
                log_weights_fn, X[start : start + chunk], score_eps, params, bernoulli,
                bn_training=False,
            )
            out.append(network.iwae_loss(log_w))
    return torch.cat(out, dim=1)


def _copy_members(best, current, targets, sources, device):
    """``best[...][targets] = current[...][sources]`` for every parameter."""
    targets = torch.as_tensor(targets, device=device)
    sources = torch.as_tensor(sources, device=device)
    for key in best:
        for b, c in zip(best[key], current[key]):
            b[targets] = c.detach()[sources]


class _LiveMembers:
    """The members still training: their stacked parameters and Adam state.

    Adam's update is elementwise, so one optimizer over stacked tensors is
    exactly one independent Adam per member, and members can be dropped by
    slicing the parameters and the optimizer's moments alike.
    """

    def __init__(self, params, lr):
        self.lr = lr
        self.ids = np.arange(params["enc_w"][0].shape[0])
        self.params = params
        for t in network.flat_parameters(params):
            t.requires_grad_(True)
        self.optimizer = torch.optim.Adam(network.flat_parameters(params), lr=lr)

    def step(self, loss):
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def detached(self):
        return {k: [t.detach() for t in v] for k, v in self.params.items()}

    def keep(self, mask):
        """Drop the members where ``mask`` (over live members) is False."""
        if mask.all():
            return
        self.ids = self.ids[mask]
        index = torch.as_tensor(np.flatnonzero(mask), device=self.params["enc_w"][0].device)
        old_flat = network.flat_parameters(self.params)
        self.params = {
            k: [t.detach()[index].clone().requires_grad_(k in network.TRAINABLE) for t in v]
            for k, v in self.params.items()
        }
        new_flat = network.flat_parameters(self.params)
        optimizer = torch.optim.Adam(new_flat, lr=self.lr)
        for old, new in zip(old_flat, new_flat):
            state = self.optimizer.state.get(old)
            if state:
                optimizer.state[new] = {
                    k: (v[index].clone() if k != "step" else v.clone()) for k, v in state.items()
                }
        self.optimizer = optimizer


def train_ensemble(
    X,
    arch,
    config,
    generator,
    log_weights_fn,
    labeled_index=None,
    selection_criterion=None,
    on_check: Optional[Callable[[int, int], None]] = None,
):
    """Train all members at once and keep each one's best checkpoint.

    Parameters
    ----------
    X : Tensor of shape (n, d)
        Scaled training rows on the training device.
    arch : network.Architecture
    config : TrainingConfig
    generator : torch.Generator
        On ``X``'s device; every random draw comes from it.
    log_weights_fn : callable
    labeled_index : Tensor of int or None
        Rows known to be outliers. They leave the IWAE term and enter a CUBO
        term that lowers their likelihood (semi-supervised ODIM).
    selection_criterion : callable or None
        ``f(losses ndarray (M, m), rows) -> (M,)`` values to maximize at
        each check, ``rows`` being the selection subset's row indices (or
        ``None`` for all rows); default is the GMM-2 distance.
    on_check : callable or None
        Called as ``on_check(update, n_active_members)`` after each check.

    Returns
    -------
    TrainingResult
    """
    device = X.device
    n_rows = X.shape[0]
    n_members, n_samples = config.n_members, config.n_samples
    latent = arch.latent_dim
    live = _LiveMembers(
        network.init_parameters(
            arch, n_members, generator, device, config.bernoulli, config.batch_norm
        ),
        config.lr,
    )
    # Fixed draws for scoring: the same checkpoint always gets the same scores.
    score_eps = torch.randn(
        (n_members, n_samples, 1, latent), generator=generator, device=device
    )

    unlabeled = torch.arange(n_rows, device=device)
    if labeled_index is not None:
        keep = torch.ones(n_rows, dtype=torch.bool, device=device)
        keep[labeled_index] = False
        unlabeled = unlabeled[keep]
    n_unlabeled = unlabeled.shape[0]
    batch = min(config.batch_size, n_unlabeled)
    labeled_batch = 0 if labeled_index is None else min(config.batch_size, len(labeled_index))

    selection_index = None
    X_select = X
    if config.selection_size is not None and n_rows > config.selection_size:
        perm = torch.randperm(n_rows, generator=generator, device=device)
        selection_index = torch.sort(perm[: config.selection_size]).values
        X_select = X[selection_index]
        selection_index = selection_index.cpu().numpy()

    if selection_criterion is None:

        def selection_criterion(losses, rows):
            return fit_gmm2(losses, distance=config.distance).distance

    best_params = {k: [t.detach().clone() for t in v] for k, v in live.params.items()}
    best_losses = None
    best_distance = np.full(n_members, -np.inf)
    best_update = np.zeros(n_members, dtype=np.int64)
    waited = np.zeros(n_members, dtype=np.int64)
    check_updates, check_distances = [], []
    timings = {"train": 0.0, "score": 0.0, "gmm": 0.0}

    def draw(n_live, pool, size):
        """Row indices (n_live, size) from ``pool`` and their noise."""
        pick = torch.randint(len(pool), (n_live, size), generator=generator, device=device)
        eps = torch.randn((n_live, n_samples, size, latent), generator=generator, device=device)
        return X[pool[pick]], eps

    update = 0
    while update < config.max_updates and live.ids.size:
        t0 = time.perf_counter()
        n_live = live.ids.size
        for _ in range(config.check_every):
            update += 1
            x, eps = draw(n_live, unlabeled, batch)
            log_w = _call_log_weights(
                log_weights_fn, x, eps, live.params, config.bernoulli, bn_training=True
            )
            loss = network.iwae_loss(log_w).mean(dim=1).sum()
            if labeled_batch:
                x, eps = draw(n_live, labeled_index, labeled_batch)
                # Running statistics: a batch of known outliers must not be
                # normalized by its own (outlying) statistics.
                log_w = _call_log_weights(
                    log_weights_fn, x, eps, live.params, config.bernoulli, bn_training=False
                )
                cubo = network.cubo_loss(log_w, config.cubo_order)
                loss = loss + config.cubo_weight * cubo.mean(dim=1).sum()
            live.step(loss)
            if update >= config.max_updates:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        timings["train"] += t1 - t0

        ids = live.ids
        losses = score_rows(
            log_weights_fn, live.detached(), X_select, score_eps[ids], config.bernoulli
        )
        losses = losses.double().cpu().numpy()
        t2 = time.perf_counter()
        timings["score"] += t2 - t1

        distance = np.full(n_live, np.nan)
        finite = np.isfinite(losses).all(axis=1)
        if finite.any():
            distance[finite] = selection_criterion(losses[finite], selection_index)
        timings["gmm"] += time.perf_counter() - t2

        # Warm-up: a barely trained network's losses can look bimodal (its
        # random structure, not memorization); such checks are recorded but
        # neither kept nor counted against patience.
        warming_up = (
            update < config.min_updates and update + config.check_every <= config.max_updates
        )
        improved = finite & (distance > best_distance[ids]) & (not warming_up)
        if improved.any():
            _copy_members(best_params, live.params, ids[improved], improved, device)
            if best_losses is None:
                best_losses = np.zeros((n_members, losses.shape[1]))
            best_losses[ids[improved]] = losses[improved]
            best_distance[ids[improved]] = distance[improved]
            best_update[ids[improved]] = update
        waited[ids[improved]] = 0
        if not warming_up:
            waited[ids[~improved]] += 1
        all_distances = np.full(n_members, np.nan)
        all_distances[ids] = distance
        check_updates.append(update)
        check_distances.append(all_distances)
        # Members out of patience leave the batched network: their best
        # checkpoint is final, and the others train faster without them.
        live.keep(waited[ids] < config.patience)
        if on_check is not None:
            on_check(update, int(live.ids.size))

    usable = np.isfinite(best_distance)
    if not usable.any():
        raise FloatingPointError(
            "training diverged: every member produced non-finite losses; "
            "check the input scale or lower lr"
        )
    if not usable.all():
        # A member whose losses were never finite has no checkpoint to score with.
        warnings.warn(
            f"{int((~usable).sum())} of {n_members} members produced only non-finite "
            "losses and were left out of the ensemble",
            RuntimeWarning,
            stacklevel=3,
        )
        keep = torch.as_tensor(np.flatnonzero(usable), device=device)
        best_params = network.select_members(best_params, keep)
        score_eps = score_eps[keep]
        best_losses = best_losses[usable]
    return TrainingResult(
        params=best_params,
        score_eps=score_eps,
        train_losses=best_losses if selection_index is None else None,
        check_updates=np.asarray(check_updates, dtype=np.int64),
        check_distances=np.vstack(check_distances),
        best_update=best_update,
        best_distance=best_distance,
        n_updates=update,
        selection_index=selection_index,
        timings=timings,
    )


def _call_log_weights(fn, x, eps, params, bernoulli, bn_training):
    """Call ``fn`` (eager or scripted) with the tensors of a parameter dict."""
    return fn(
        x, eps, params["enc_w"], params["enc_b"], params["dec_w"], params["dec_b"],
        params["bn_mean"], params["bn_var"], bn_training, bernoulli,
    )

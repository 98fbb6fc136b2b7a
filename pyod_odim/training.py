"""The ODIM update loop: train briefly, check often, keep the best checkpoint.

A fit is a sequence of named steps (:class:`EnsembleFit`):

1. :meth:`~EnsembleFit.draw_batch`: minibatch rows and importance noise for
   every member still training;
2. :meth:`~EnsembleFit.update`: one optimizer step, done by the engine
   (:mod:`pyod_odim.engines`: C++ kernels, eager or compiled PyTorch);
3. every ``check_every`` updates, :meth:`~EnsembleFit.check`: the losses of
   the selection set under each member and the criterion (by default the
   GMM-2 distance between the two components of the min-max normalized
   losses); a warm-up check too early to enter any smoothed criterion
   after the warm-up is skipped (:meth:`~EnsembleFit.check_can_count`);
4. :meth:`~EnsembleFit.keep_or_stop`: a member keeps the parameters of its
   largest criterion so far and stops after ``patience`` checks without a
   new maximum (with ``keep_last`` it keeps the state it stops in instead).

:func:`train_ensemble` runs the steps until every member stops.
"""

import time
import warnings
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from . import network
from .engines import Batch, scores_in_bf16
from .gmm import fit_gmm2
from .known_outliers import label_aware_criterion
from .progress import make_progress
from .training_rows import DenseTrainingRows


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
    likelihood: str  # the decoder's: "gaussian", "rectified" or "bernoulli"
    batch_norm: bool = False
    min_updates: int = 0
    cubo_weight: float = 1.0
    cubo_order: float = 2.0
    n_samples_train: Optional[int] = None  # None: n_samples
    n_samples_check: Optional[int] = None  # None: n_samples; at most n_samples
    n_threads: int = 1  # CPU threads of the GMM-2 fits
    smoothing: int = 1  # checks averaged in the selection criterion
    keep_last: bool = False  # keep each member's state when it stops, not its best check
    # Score the early warm-up checks too (only the history changes).
    every_check: bool = False


class TrainingResult(NamedTuple):
    """What a fit leaves behind.

    Attributes
    ----------
    params : dict of str to list of Tensor
        Each member's parameters at its best check (``keep_last``: at the
        check it stopped at).
    score_eps : Tensor of shape (M, K, 1, L)
        The fixed importance draws used for every scoring pass.
    train_losses : ndarray of shape (M, n) or None
        Best-checkpoint losses of all rows when the checks scored every row
        with the scoring draws, else ``None`` (the caller scores them once).
    check_updates : ndarray of shape (n_checks,)
    check_distances : ndarray of shape (n_checks, M)
        Selection criterion of each member at each check (the trailing mean
        of the raw criterion over ``smoothing`` checks); NaN once it stopped.
    check_raw : ndarray of shape (n_checks, M)
        The raw criterion (GMM-2 distance by default) before smoothing.
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
    check_raw: np.ndarray
    best_update: np.ndarray
    best_distance: np.ndarray
    n_updates: int
    selection_index: Optional[np.ndarray]
    timings: dict


class LiveMembers:
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
        self.optimizer = self._adam(network.optimized_parameters(params))

    def _adam(self, tensors):
        # The fused implementation measured 3x faster than the default
        # per-tensor loop on the CPU; PyTorch before 2.4 has it on CUDA only.
        try:
            return torch.optim.Adam(tensors, lr=self.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(tensors, lr=self.lr)

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def apply_gradients(self):
        """Adam step with the gradients an engine left in ``.grad``."""
        self.optimizer.step()

    def detached(self):
        return {k: [t.detach() for t in v] for k, v in self.params.items()}

    def keep(self, mask):
        """Drop the members where ``mask`` (over live members) is False."""
        if mask.all():
            return
        self.ids = self.ids[mask]
        index = torch.as_tensor(np.flatnonzero(mask), device=self.params["enc_w"][0].device)
        old_flat = network.optimized_parameters(self.params)
        self.params = {
            k: [t.detach()[index].clone().requires_grad_(k in network.TRAINABLE) for t in v]
            for k, v in self.params.items()
        }
        new_flat = network.optimized_parameters(self.params)
        optimizer = self._adam(new_flat)
        for old, new in zip(old_flat, new_flat):
            state = self.optimizer.state.get(old)
            if state:
                optimizer.state[new] = {
                    k: (v[index].clone() if k != "step" else v.clone()) for k, v in state.items()
                }
        self.optimizer = optimizer


def _copy_members(best, current, targets, sources, device):
    """``best[...][targets] = current[...][sources]`` for every parameter."""
    targets = torch.as_tensor(targets, device=device)
    sources = torch.as_tensor(sources, device=device)
    for key in best:
        for b, c in zip(best[key], current[key]):
            b[targets] = c.detach()[sources]


class EnsembleFit:
    """One fit of the ensemble, step by step (see the module docstring).

    Parameters
    ----------
    X : training rows (:mod:`pyod_odim.training_rows`) or Tensor of shape (n, d)
        Scaled training rows on the training device; a tensor is used as it
        is (no clamping).
    arch : network.Architecture
    config : TrainingConfig
    generator : torch.Generator
        On ``X``'s device; every random draw comes from it, in a fixed order.
    engine : engine of :mod:`pyod_odim.engines`
    labeled_index : Tensor of int or None
        Rows known to be outliers. They leave the IWAE term and enter a CUBO
        term that lowers their likelihood (semi-supervised ODIM).
    selection_criterion : callable or None
        ``f(losses ndarray (M, m), rows) -> (M,)`` values to maximize at
        each check, ``rows`` being the selection subset's row indices (or
        ``None`` for all rows); default is the GMM-2 distance.
    """

    def __init__(self, X, arch, config, generator, engine, labeled_index=None,
                 selection_criterion=None):
        if isinstance(X, torch.Tensor):
            X = DenseTrainingRows(X, detached=False)
        self.X = X
        self.config = config
        self.generator = generator
        self.engine = engine
        self.bf16_checks = engine.precision == "bfloat16"
        # The final scores' products (FittedScorer.losses): bfloat16 only
        # where the engine has the units; PyTorch on the CPU emulates it in
        # the checks but scores in float32.
        self.bf16_scores = scores_in_bf16(engine.precision, engine.name, X.device)
        self.device = X.device
        n_rows = X.n_rows
        M = config.n_members
        self.latent = arch.latent_dim
        self.k_train = config.n_samples_train or config.n_samples
        self.k_check = min(config.n_samples_check or config.n_samples, config.n_samples)
        self.live = LiveMembers(
            network.init_parameters(
                arch, M, generator, self.device, config.likelihood, config.batch_norm
            ),
            config.lr,
        )
        # Fixed draws for scoring: the same checkpoint always gets the same
        # scores. Checks use the first k_check of them.
        self.score_eps = torch.randn(
            (M, config.n_samples, 1, self.latent), generator=generator, device=self.device
        )

        self.unlabeled = torch.arange(n_rows, device=self.device)
        self.labeled = labeled_index
        if labeled_index is not None:
            keep = torch.ones(n_rows, dtype=torch.bool, device=self.device)
            keep[labeled_index] = False
            self.unlabeled = self.unlabeled[keep]
        self.batch = min(config.batch_size, self.unlabeled.shape[0])
        self.labeled_batch = 0 if labeled_index is None else min(
            config.batch_size, len(labeled_index)
        )

        self.selection_index = None
        self.X_select = X
        if config.selection_size is not None and n_rows > config.selection_size:
            perm = torch.randperm(n_rows, generator=generator, device=self.device)
            index = torch.sort(perm[: config.selection_size]).values
            self.X_select = X.subset(index)
            self.selection_index = index.cpu().numpy()

        if selection_criterion is None:

            def selection_criterion(losses, rows):
                return fit_gmm2(
                    losses, distance=config.distance, n_threads=config.n_threads
                ).distance

        self.criterion = selection_criterion
        self.best_params = {k: [t.detach().clone() for t in v] for k, v in self.live.params.items()}
        self.best_losses = None
        self.best_distance = np.full(M, -np.inf)
        self.best_update = np.zeros(M, dtype=np.int64)
        self.waited = np.zeros(M, dtype=np.int64)
        # The last `smoothing` raw criteria of each member, oldest first.
        self.recent = np.full((M, max(1, config.smoothing)), np.nan)
        self.check_updates, self.check_distances, self.check_raw = [], [], []
        self.timings = {"train": 0.0, "score": 0.0, "gmm": 0.0}
        self.n_updates = 0

    # ------------------------------------------------------------ the steps
    def finished(self):
        """True once every member stopped or ``max_updates`` is reached."""
        return self.n_updates >= self.config.max_updates or not self.live.ids.size

    def _draw(self, pool, size):
        n_live = self.live.ids.size
        pick = torch.randint(len(pool), (n_live, size), generator=self.generator,
                             device=self.device)
        eps = torch.randn((n_live, self.k_train, size, self.latent), generator=self.generator,
                          device=self.device)
        return self.X.take(pool[pick]), eps

    def draw_batch(self):
        """Minibatch rows (M, B, d) and noise (M, K_train, B, L) of the live members."""
        x, eps = self._draw(self.unlabeled, self.batch)
        if not self.labeled_batch:
            return Batch(x, eps)
        x_lab, eps_lab = self._draw(self.labeled, self.labeled_batch)
        return Batch(x, eps, x_lab, eps_lab)

    def update(self, batch):
        """One optimizer step of the live members."""
        self.engine.update(self.live, batch)
        self.n_updates += 1

    def train_until_check(self):
        """``check_every`` updates (fewer at ``max_updates``)."""
        t0 = time.perf_counter()
        for _ in range(self.config.check_every):
            self.update(self.draw_batch())
            if self.n_updates >= self.config.max_updates:
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings["train"] += time.perf_counter() - t0

    def warming_up(self, update):
        """Whether a check at ``update`` is part of the warm-up.

        Warm-up checks are recorded but neither kept nor counted against
        patience; the last check before ``max_updates`` never is one.
        """
        config = self.config
        return update < config.min_updates and update + config.check_every <= config.max_updates

    def check_can_count(self):
        """Whether the check at this update can change what the fit keeps.

        A warm-up check is read only by the smoothed criterion (the mean of
        a member's last ``smoothing`` checks) of a check after the warm-up,
        so only the last ``smoothing - 1`` warm-up checks can count: an
        earlier one is skipped, which saves its scoring and changes nothing
        but ``history_``. With ``every_check`` every check is scored.
        """
        config = self.config
        if config.every_check:
            return True
        last_in_window = self.n_updates + (max(1, config.smoothing) - 1) * config.check_every
        return not self.warming_up(min(last_in_window, config.max_updates))

    def check(self):
        """Selection-set losses (M_live, m) and criterion (M_live,) of the live members."""
        t0 = time.perf_counter()
        ids = self.live.ids
        # A bfloat16 fit's checks run its products in bfloat16 too: they are
        # part of training (which update to keep), not the final scores.
        losses = self.X_select.losses(
            self.engine, self.live.detached(), self.score_eps[ids, : self.k_check],
            self.bf16_checks,
        )
        t1 = time.perf_counter()
        self.timings["score"] += t1 - t0
        distance = np.full(ids.size, np.nan)
        finite = np.isfinite(losses).all(axis=1)
        if finite.any():
            distance[finite] = self.criterion(losses[finite], self.selection_index)
        self.timings["gmm"] += time.perf_counter() - t1
        return losses, distance

    def smooth(self, distance):
        """Trailing mean of each live member's last ``smoothing`` criteria.

        A single GMM-2 fit is a noisy reading of how well a checkpoint
        separates outliers; averaging a few consecutive checks keeps a lucky
        reading from ending a member's search (docs/decisions.md, "Checkpoint
        selection").
        """
        ids = self.live.ids
        self.recent[ids] = np.roll(self.recent[ids], -1, axis=1)
        self.recent[ids, -1] = distance
        window = self.recent[ids]
        seen = np.isfinite(window)
        total = np.where(seen, window, 0.0).sum(axis=1)
        count = seen.sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def keep_or_stop(self, losses, distance):
        """Keep each member's best checkpoint; stop members out of patience.

        ``distance`` is the raw criterion of the live members at this check;
        the checkpoint kept is the one with the largest smoothed criterion.
        """
        config, ids = self.config, self.live.ids
        criterion = self.smooth(distance)
        # Warm-up: a barely trained network's losses can look bimodal (its
        # random structure, not memorization); such checks are recorded but
        # neither kept nor counted against patience.
        update = self.n_updates
        warming_up = self.warming_up(update)
        # A member whose losses are not finite now cannot be kept now, even
        # if its earlier checks carry the smoothed criterion.
        improved = (
            np.isfinite(distance) & np.isfinite(criterion)
            & (criterion > self.best_distance[ids]) & (not warming_up)
        )
        if improved.any():
            self._keep_checkpoints(improved, losses)
            self.best_distance[ids[improved]] = criterion[improved]
        self.waited[ids[improved]] = 0
        if not warming_up:
            self.waited[ids[~improved]] += 1
        for record, values in ((self.check_distances, criterion), (self.check_raw, distance)):
            row = np.full(config.n_members, np.nan)
            row[ids] = values
            record.append(row)
        self.check_updates.append(update)
        staying = self.waited[ids] < config.patience
        if config.keep_last:
            self._keep_stopping_states(losses, distance, staying)
        # Members out of patience leave the batched network: their kept
        # checkpoint is final, and the others train faster without them.
        self.live.keep(staying)

    def _keep_stopping_states(self, losses, distance, staying):
        """Keep the state of each member that stops at this check.

        The best check then only decides when a member stops (``patience``
        checks after it); the network kept is the one trained that long.
        A state whose losses are not finite keeps the best check instead.
        """
        stopping = ~staying if self.n_updates < self.config.max_updates else np.ones_like(staying)
        stopping &= np.isfinite(distance)
        if stopping.any():
            self._keep_checkpoints(stopping, losses)

    def _keep_checkpoints(self, chosen, losses):
        """Make the current state of the ``chosen`` live members their kept checkpoint."""
        ids = self.live.ids[chosen]
        _copy_members(self.best_params, self.live.params, ids, chosen, self.device)
        if self.best_losses is None:
            self.best_losses = np.zeros((self.config.n_members, losses.shape[1]))
        self.best_losses[ids] = losses[chosen]
        self.best_update[ids] = self.n_updates

    def result(self):
        """The best checkpoints and the diagnostics of the finished fit."""
        usable = np.isfinite(self.best_distance)
        if not usable.any():
            raise FloatingPointError(
                "training diverged: every member produced non-finite losses; "
                "check the input scale or lower lr"
            )
        best_params, score_eps, best_losses = self.best_params, self.score_eps, self.best_losses
        if not usable.all():
            # A member whose losses were never finite has no checkpoint to score with.
            warnings.warn(
                f"{int((~usable).sum())} of {usable.size} members produced only non-finite "
                "losses and were left out of the ensemble",
                RuntimeWarning,
                stacklevel=4,
            )
            keep = torch.as_tensor(np.flatnonzero(usable), device=self.device)
            best_params = network.select_members(best_params, keep)
            score_eps = score_eps[keep]
            best_losses = best_losses[usable]
        # The checks' losses serve as the final training scores only when
        # they are those scores: every row, every draw, the same products.
        all_rows_scored = (
            self.selection_index is None and self.k_check == self.config.n_samples
            and self.bf16_checks == self.bf16_scores
        )
        return TrainingResult(
            params=best_params,
            score_eps=score_eps,
            train_losses=best_losses if all_rows_scored else None,
            check_updates=np.asarray(self.check_updates, dtype=np.int64),
            check_distances=np.vstack(self.check_distances),
            check_raw=np.vstack(self.check_raw),
            best_update=self.best_update,
            best_distance=self.best_distance,
            n_updates=self.n_updates,
            selection_index=self.selection_index,
            timings=self.timings,
        )


def train_ensemble(
    X,
    arch,
    config,
    generator,
    engine,
    labeled_index=None,
    selection_criterion=None,
    on_check: Optional[Callable[[int, int], None]] = None,
):
    """Train all members at once and keep each one's best checkpoint.

    Parameters
    ----------
    X, arch, config, generator, engine, labeled_index, selection_criterion
        See :class:`EnsembleFit`.
    on_check : callable or None
        Called as ``on_check(update, n_active_members)`` every ``check_every``
        updates (after the check, where one is scored).

    Returns
    -------
    TrainingResult
    """
    fit = EnsembleFit(X, arch, config, generator, engine, labeled_index, selection_criterion)
    try:
        while not fit.finished():
            fit.train_until_check()
            if fit.check_can_count():
                fit.keep_or_stop(*fit.check())
            if on_check is not None:
                on_check(fit.n_updates, int(fit.live.ids.size))
    finally:
        engine.release()
    return fit.result()


def train_members(fitting, labeled, arch, config, engine, seed, label_selection="rank",
                  verbose=0):
    """Train the ensemble on a fit's scaled rows, as ``ODIM.fit`` does.

    Parameters
    ----------
    fitting : training rows (:mod:`pyod_odim.training_rows`)
        The scaled fitting rows, on the fit's device. When some lay beyond
        the scaling bounds (``fitting.detached``), training and the checks
        see them clamped to [0, 1] (the scoring box would let them dominate
        every loss).
    labeled : ndarray of bool of shape (n,) or None
        Known outliers (semi-supervised mode).
    arch, config, engine
        See :class:`EnsembleFit`.
    seed : int
        Seeds the generator of every draw.
    label_selection : {"rank", "gmm"}, optional (default="rank")
        With known outliers, ``"rank"`` chooses checkpoints by how high they
        rank (:func:`pyod_odim.known_outliers.label_aware_criterion`).
    verbose : int, optional (default=0)
        A progress bar above 0.

    Returns
    -------
    result : TrainingResult
    """
    generator = torch.Generator(device=fitting.device)
    generator.manual_seed(seed)
    labeled_index = criterion = None
    if labeled is not None and labeled.any():
        labeled_index = torch.as_tensor(np.flatnonzero(labeled), device=fitting.device)
        if label_selection == "rank":
            criterion = label_aware_criterion(labeled, config.distance, config.n_threads)
    progress = make_progress(verbose, config.max_updates)
    try:
        return train_ensemble(fitting, arch, config, generator, engine,
                              labeled_index=labeled_index, selection_criterion=criterion,
                              on_check=progress.update)
    finally:
        progress.close()

"""The fitted scorer: everything needed to score a row, and nothing else.

``ODIM.fit`` builds one :class:`FittedScorer`; every path that scores rows
goes through it: ``decision_function``, the final pass over the training
rows, :mod:`pyod_odim.dask`, model files (:mod:`pyod_odim.model_file`) and
the exports (:mod:`pyod_odim.export`). A row's score is

1. the row scaled by the fitting rows' bounds (:class:`~pyod_odim.scaling.FeatureScaling`);
2. each member's negative IWAE bound under its best checkpoint and the
   fixed importance draws ``score_eps`` (shared by all rows, so a score does
   not depend on the rows scored with it);
3. the members combined: their mean, or the mean after standardizing each
   member by its training losses (``combination="standardized"``);
4. in semi-supervised mode, optionally blended with the known outliers'
   neighbour ratio (:class:`~pyod_odim.neighbors.NeighborScorer`).

The state is NumPy only (float32 network parameters and draws, float64
scaling and moments), so a scorer fitted on CUDA scores on any CPU, pickles
small and serializes to plain arrays.
"""

import numpy as np
import torch

from . import network
from ._validation import stored_array, stored_field
from ._device import cpu_fast_math, scoring_device
from ._threads import torch_threads
from .chunking import MemberMoments, chunk_slices, rows_per_chunk, scoring_row_bytes
from .engines import make_engine
from .neighbors import NeighborScorer
from .scaling import FeatureScaling, network_box

COMBINATIONS = ("mean", "standardized")

PARAMETER_KINDS = ("enc_w", "enc_b", "dec_w", "dec_b", "bn_mean", "bn_var")
"""tuple of str: the kinds of network parameters, one flat array each in a model file."""

NEIGHBOR_ARRAYS = ("inlier_rows", "outlier_rows", "odim_sorted", "ratio_sorted")
"""tuple of str: the arrays of a fitted :class:`~pyod_odim.neighbors.NeighborScorer`."""


def unscorable_to_inf(values):
    """``values`` with every NaN or infinite entry set to ``+inf``, in place.

    A loss that is not finite comes from parameters no fit produces (a
    damaged model); ``+inf`` labels such a row an outlier, where NaN would
    compare below every threshold and label it an inlier.

    Parameters
    ----------
    values : ndarray of float

    Returns
    -------
    values : ndarray
        The same array.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        values[bad] = np.inf
    return values


class FittedScorer:
    """Scores rows with a fitted ODIM ensemble.

    Parameters
    ----------
    scaling : pyod_odim.scaling.FeatureScaling
        Raw features to the network's range.
    architecture : pyod_odim.network.Architecture
    likelihood : {"gaussian", "bernoulli", "rectified"}
    params : dict of str to list of ndarray
        Each member's parameters at its best checkpoint, float32, members
        on the first axis (:func:`pyod_odim.network.params_to_numpy`).
    score_eps : ndarray of shape (M, K, 1, L), float32
        The fixed importance draws.
    combination : {"mean", "standardized"}, optional (default="mean")
    member_mean, member_std : ndarray of shape (M,) or None
        Each member's loss moments over the fitting rows; set by
        :meth:`score_training_rows`, needed by ``"standardized"``.
    neighbors : pyod_odim.neighbors.NeighborScorer or None
        The known outliers' neighbour blend (semi-supervised mode).
    feature_reference : ndarray of shape (n_features,) or None
        What each feature costs a typical fitting row: the median of its
        combined expected negative log-likelihood over a sample of them
        (:meth:`fit_contribution_reference`).
    contribution_quantiles : ndarray of shape (101, n_features) or None
        Percentiles 0 to 100 of the fitting rows' contributions (after the
        reference), the cut-off bands of ``ODIM.explain_outlier``.

    Attributes
    ----------
    n_members : int
    n_features : int
    """

    def __init__(self, scaling, architecture, likelihood, params, score_eps,
                 combination="mean", member_mean=None, member_std=None,
                 neighbors=None, feature_reference=None, contribution_quantiles=None):
        network.check_likelihood(likelihood)
        if combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")
        self.scaling = scaling
        self.architecture = architecture
        self.likelihood = likelihood
        self.params = params
        self.score_eps = score_eps
        self.combination = combination
        self.member_mean = member_mean
        self.member_std = member_std
        self.neighbors = neighbors
        self.feature_reference = feature_reference
        self.contribution_quantiles = contribution_quantiles

    @property
    def n_members(self):
        return int(self.score_eps.shape[0])

    @property
    def n_features(self):
        return int(self.architecture.n_features)

    # ------------------------------------------------------------ stored state
    def to_arrays(self):
        """The scorer's arrays by name, as a model file stores them.

        Each kind of network parameter is one flat float32 array; the
        architecture gives every layer's shape (:meth:`from_arrays`).
        """
        arrays = {
            "scaling/data_min": self.scaling.data_min_,
            "scaling/data_max": self.scaling.data_max_,
            "score_eps": self.score_eps,
            "member_mean": self.member_mean,
            "member_std": self.member_std,
            "feature_reference": self.feature_reference,
            "contribution_quantiles": self.contribution_quantiles,
        }
        for key in PARAMETER_KINDS:
            layers = self.params[key]
            flat = np.concatenate([np.ravel(a) for a in layers]) if layers else np.zeros(0)
            arrays[f"params/{key}"] = flat.astype(np.float32, copy=False)
        if self.neighbors is not None:
            arrays.update({f"neighbors/{key}": getattr(self.neighbors, key + "_")
                           for key in NEIGHBOR_ARRAYS})
        return arrays

    def to_fields(self):
        """The scorer's settings as JSON-ready values (the counterpart of :meth:`to_arrays`)."""
        arch, nb = self.architecture, self.neighbors
        return {
            "architecture": {"n_features": int(arch.n_features),
                             "hidden_sizes": [int(w) for w in arch.hidden_sizes],
                             "latent_dim": int(arch.latent_dim)},
            "likelihood": self.likelihood,
            "combination": self.combination,
            "batch_norm": len(self.params["bn_mean"]) > 0,
            "neighbors": None if nb is None else {
                "weight": nb.weight, "n_neighbors": nb.n_neighbors,
                "inlier_quantile": nb.inlier_quantile},
        }

    @classmethod
    def from_arrays(cls, fields, arrays):
        """Rebuild a scorer from :meth:`to_fields` and :meth:`to_arrays` output, checking them.

        Parameters
        ----------
        fields : dict
            JSON values, as read from a file.
        arrays : dict of str to ndarray
            Finite where scoring needs it (the model file checks that).

        Returns
        -------
        FittedScorer

        Raises
        ------
        ValueError
            A missing or malformed field or array, or arrays whose shapes do
            not fit the architecture.
        """
        arch_fields = stored_field(fields, "architecture", dict)
        try:
            arch = network.Architecture(int(arch_fields["n_features"]),
                                        tuple(int(w) for w in arch_fields["hidden_sizes"]),
                                        int(arch_fields["latent_dim"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError("malformed architecture") from None
        if (arch.n_features < 1 or arch.latent_dim < 1 or not arch.hidden_sizes
                or min(arch.hidden_sizes) < 1):
            raise ValueError(f"impossible architecture {arch}")
        likelihood = stored_field(fields, "likelihood", str)
        combination = stored_field(fields, "combination", str)
        if likelihood not in network.LIKELIHOODS or combination not in COMBINATIONS:
            raise ValueError(f"unknown likelihood {likelihood!r} or combination {combination!r}")
        eps = stored_array(arrays, "score_eps")
        if (eps.ndim != 4 or eps.shape[2] != 1 or eps.shape[3] != arch.latent_dim
                or eps.dtype != np.float32):
            raise ValueError(f"score_eps has shape {eps.shape}, not (M, K, 1, {arch.latent_dim})")
        n_members = eps.shape[0]
        batch_norm = fields.get("batch_norm")
        if not isinstance(batch_norm, bool):
            raise ValueError("'batch_norm' is missing or malformed")
        expected = network.expected_parameter_shapes(arch, n_members, likelihood, batch_norm)
        params = {key: _split_layers(f"params/{key}", stored_array(arrays, f"params/{key}"),
                                     expected[key]) for key in PARAMETER_KINDS}
        if batch_norm and any((a <= 0).any() for a in params["bn_var"]):
            raise ValueError("batch normalization variances must be positive")
        data_min = stored_array(arrays, "scaling/data_min")
        data_max = stored_array(arrays, "scaling/data_max")
        if data_min.shape != (arch.n_features,) or data_max.shape != (arch.n_features,):
            raise ValueError("scaling bounds do not match the number of features")
        if (data_max < data_min).any():
            raise ValueError("scaling bounds have a maximum below the minimum")
        mean, std = stored_array(arrays, "member_mean"), stored_array(arrays, "member_std")
        if mean.shape != (n_members,) or std.shape != (n_members,) or (std < 0).any():
            raise ValueError("member moments do not match the members")
        reference = stored_array(arrays, "feature_reference")
        quantiles = stored_array(arrays, "contribution_quantiles")
        if reference.shape != (arch.n_features,) or quantiles.shape != (101, arch.n_features):
            raise ValueError("feature_reference or contribution_quantiles do not match "
                             "the features")
        return cls(FeatureScaling(data_min, data_max), arch, likelihood, params, eps,
                   combination=combination, member_mean=mean, member_std=std,
                   neighbors=_stored_neighbors(fields, arrays, arch.n_features),
                   feature_reference=reference, contribution_quantiles=quantiles)

    # ------------------------------------------------------------ pieces
    def scale(self, X):
        """Raw rows ``X`` (n, d) scaled and clipped to the network's box: its input."""
        return self.scaling.transform_clipped(X, self.box, floor=self.floor)[0]

    def scale_with_cost(self, X):
        """The clipped scaled rows and each row's overshoot cost (n,), float64.

        See :meth:`pyod_odim.scaling.FeatureScaling.transform_clipped`.
        """
        return self.scaling.transform_clipped(X, self.box, floor=self.floor)

    @property
    def box(self):
        """tuple of float: the interval the network's inputs are clipped to."""
        return network_box(self.likelihood)

    @property
    def floor(self):
        """bool: values at a feature's lower bound scale to exactly 0 (rectified likelihood)."""
        return self.likelihood == "rectified"

    def scoring_engine(self, engine="auto", device=None, n_threads=1):
        """The engine (:mod:`pyod_odim.engines`) that scores on ``device``."""
        device = scoring_device(device) if not isinstance(device, torch.device) else device
        return make_engine(engine, device, self.architecture, self.likelihood,
                           n_threads=n_threads)

    def torch_params(self, device):
        """The parameters and draws as tensors on ``device`` (no copy on the CPU)."""
        params = network.params_from_numpy(self.params, device)
        return params, torch.as_tensor(self.score_eps, device=device)

    def chunk_rows(self, working_memory, input_itemsize=8):
        """Rows per scoring chunk under ``working_memory`` MiB."""
        row_bytes = scoring_row_bytes(self.n_features, self.n_members, input_itemsize)
        return rows_per_chunk(working_memory, row_bytes)

    def scaled_tensor(self, X, device, n_members, working_memory):
        """The scaled, clipped rows as one float32 tensor on ``device``, and their overshoot costs.

        Filled chunk by chunk (sized for ``n_members`` members), so a float64
        input never has a float64 scaled copy of all its rows beside it.
        """
        row_bytes = scoring_row_bytes(X.shape[1], n_members, X.dtype.itemsize)
        chunk = rows_per_chunk(working_memory, row_bytes)
        out = torch.empty(X.shape, dtype=torch.float32, device=device)
        costs = np.empty(X.shape[0])
        for rows in chunk_slices(X.shape[0], chunk):
            x, costs[rows] = self.scale_with_cost(X[rows])
            out[rows] = torch.as_tensor(x, dtype=torch.float32, device=device)
        return out, costs

    def combine(self, losses, cost=None):
        """Combined scores from member losses (M, n) and overshoot costs (n,).

        The overshoot cost of values beyond the scaling bounds is in the
        unit of a loss; the standardized combination divides it by the
        members' mean loss deviation, as it divides the losses. A row whose
        combined score is not finite (a member's loss is NaN or infinite:
        parameters no fit produces) scores ``+inf``, so it is labelled an
        outlier and never gets a NaN score.
        """
        if self.combination == "standardized":
            std = np.where(self.member_std > 0, self.member_std, 1.0)
            losses = (losses - self.member_mean[:, None]) / std[:, None]
        scores = losses.mean(axis=0)
        if cost is not None:
            scores = scores + cost / self.cost_unit
        return unscorable_to_inf(scores)

    @property
    def cost_unit(self):
        """float: a loss unit in the combined score (1 for the plain mean)."""
        if self.combination != "standardized":
            return 1.0
        return float(np.where(self.member_std > 0, self.member_std, 1.0).mean())

    def member_losses(self, source, engine, chunk, device, costs=None):
        """Member losses of consecutive row chunks, with their overshoot costs.

        Parameters
        ----------
        source : ndarray or Tensor of shape (n, d)
            Raw rows (scaled chunk by chunk here), or, with ``costs``, rows
            already scaled and clipped into a float32 tensor on the engine's
            device.
        engine : engine of :mod:`pyod_odim.engines`
        chunk : int
            Rows per chunk.
        device : torch.device
            The engine's device.
        costs : ndarray of shape (n,) or None
            The overshoot costs of already scaled rows.

        Yields
        ------
        rows : slice
        x : ndarray of shape (rows.stop - rows.start, d) or None
            The chunk as scaled and clipped here, for the neighbour blend;
            None when ``source`` was already scaled.
        losses : ndarray of shape (M, rows.stop - rows.start), float64
        cost : ndarray of shape (rows.stop - rows.start,), float64
        """
        params, eps = self.torch_params(device)
        for rows in chunk_slices(source.shape[0], chunk):
            if costs is not None:
                x, tensor, cost = None, source[rows], costs[rows]
            else:
                x, cost = self.scale_with_cost(source[rows])
                tensor = torch.as_tensor(x, dtype=torch.float32, device=device)
            yield rows, x, engine.score(params, tensor, eps), cost

    # ------------------------------------------------------------ scoring
    def score(self, X, *, engine="auto", device=None, n_jobs=1, working_memory=256):
        """Scores of raw rows, chunk by chunk under ``working_memory``.

        Parameters
        ----------
        X : ndarray of shape (n, n_features)
            Validated rows (see :func:`pyod_odim._validation.check_samples`);
            may have no rows.
        engine : str, optional (default="auto")
            What runs the network (:func:`pyod_odim.engines.make_engine`).
        device : str, torch.device or None
            Where to score; unavailable devices fall back to the CPU.
        n_jobs : int, optional (default=1)
            Threads (already resolved: a positive count).
        working_memory : float, optional (default=256)
            MiB of temporaries.

        Returns
        -------
        scores : ndarray of shape (n,), float64
        """
        device = scoring_device(device)
        engine = self.scoring_engine(engine, device, n_jobs)
        chunk = self.chunk_rows(working_memory, X.dtype.itemsize)
        scores = np.empty(X.shape[0])
        with torch_threads(n_jobs), cpu_fast_math(device):
            for rows, x, losses, cost in self.member_losses(X, engine, chunk, device):
                scores[rows] = self.combine(losses, cost)
                if self.neighbors is not None:
                    # A row the network cannot score stays +inf through the blend.
                    blended = self.neighbors.score(x, scores[rows])
                    scores[rows] = np.where(scores[rows] == np.inf, np.inf, blended)
        return scores

    def score_training_rows(self, X, X_scaled, fit_costs, fit_rows, fit_losses, engine,
                            working_memory):
        """Scores of every row of ``X`` at the end of a fit; sets the member moments.

        Each member's loss moments over the fitting rows
        (``member_mean``/``member_std``) are gathered in the same pass when
        the combination does not need them first.

        Parameters
        ----------
        X : ndarray of shape (n, d)
            The validated input, unscaled.
        X_scaled : Tensor of shape (n_fit, d)
            The scaled and clipped fitting rows (all of ``X`` when
            ``fit_rows`` is None) on the engine's device.
        fit_costs : ndarray of shape (n_fit,)
            Their overshoot costs.
        fit_rows : ndarray of shape (n_fit,) or None
            Sorted rows of ``X`` the model was fitted on.
        fit_losses : ndarray of shape (M, n_fit) or None
            Member losses of the fitting rows, when the checks left them.
        engine : engine of :mod:`pyod_odim.engines`
        working_memory : float

        Returns
        -------
        scores : ndarray of shape (n,), before any neighbour blend
        """
        chunk = self.chunk_rows(working_memory, X.dtype.itemsize)
        device = X_scaled.device
        # Fitting rows are scored from the scaled tensor, other rows scaled chunk by chunk.
        source, costs = (X_scaled, fit_costs) if fit_rows is None else (X, None)
        if fit_losses is None and fit_rows is None and X.shape[0] <= chunk:
            params, eps = self.torch_params(device)
            fit_losses = engine.score(params, X_scaled, eps)  # one chunk holds every row
        if fit_losses is not None:
            self.member_mean = fit_losses.mean(axis=1)
            self.member_std = fit_losses.std(axis=1)
            if fit_rows is None:
                return self.combine(fit_losses, fit_costs)
        elif self.combination == "standardized":
            # Two passes: the moments weight every member, so they come first.
            moments = MemberMoments()
            for _, _, losses, _ in self.member_losses(X_scaled, engine, chunk, device, fit_costs):
                moments.add(losses)
            self.member_mean, self.member_std = moments.mean, moments.std
        else:
            # The plain mean needs no moments: gather them in the same pass.
            moments = MemberMoments()
            scores = np.empty(X.shape[0])
            for rows, _, losses, cost in self.member_losses(source, engine, chunk, device, costs):
                scores[rows] = self.combine(losses, cost)
                if fit_rows is not None:
                    lo, hi = np.searchsorted(fit_rows, [rows.start, rows.stop])
                    losses = losses[:, fit_rows[lo:hi] - rows.start]
                moments.add(losses)
            self.member_mean, self.member_std = moments.mean, moments.std
            return scores
        scores = np.empty(X.shape[0])
        for rows, _, losses, cost in self.member_losses(source, engine, chunk, device, costs):
            scores[rows] = self.combine(losses, cost)
        return scores

    # ------------------------------------------------------------ explanations
    def contributions(self, X, *, engine="auto", device=None, n_jobs=1, working_memory=256,
                      relative=True):
        """Each feature's share of each row's (likelihood) score.

        For member ``m``, row ``x`` and feature ``j``, with the normalized
        importance weights ``w~_k`` of the draws that score the row,
        ``c_mj(x) = sum_k w~_k * (-log p(x_j | z_k))`` (the expected
        negative log-likelihood of the feature), plus the feature's
        overshoot cost beyond the scaling bounds; members combine as the
        score combines them (their mean, after dividing by each member's
        loss deviation for ``"standardized"``). The contribution is that
        minus :attr:`feature_reference`, so a feature that every row finds
        hard does not dominate. Then, exactly,
        ``score(x) = sum_j (contribution_j(x) + reference_j) + rest(x)``,
        where ``rest`` is the latent part of the IWAE bound (the weighted
        ``log q(z|x) - log p(z)``, the weights' entropy, ``log K``) and,
        for ``"standardized"``, the members' offsets. It explains the
        likelihood score: the semi-supervised neighbour blend (a rank
        transform) is not part of it.

        Parameters
        ----------
        X : ndarray of shape (n, n_features)
            Validated raw rows.
        engine, device, n_jobs, working_memory
            As for :meth:`score`.
        relative : bool, optional (default=True)
            Subtract :attr:`feature_reference`; False gives the combined
            expected negative log-likelihoods themselves.

        Returns
        -------
        contributions : ndarray of shape (n, n_features), float64
        rest : ndarray of shape (n,), float64
        """
        device = scoring_device(device)
        engine = self.scoring_engine(engine, device, n_jobs)
        params, eps = self.torch_params(device)
        # (M, rows, d) float32 and float64 pieces per row, beside the scaling's.
        row_bytes = self.n_features * (2 * X.dtype.itemsize + 12 + 12 * self.n_members)
        chunk = rows_per_chunk(working_memory, row_bytes)
        out = np.empty(X.shape, dtype=np.float64)
        rest = np.empty(X.shape[0])
        with torch_threads(n_jobs), cpu_fast_math(device):
            for rows in chunk_slices(X.shape[0], chunk):
                x, cost = self.scaling.transform_clipped(X[rows], self.box, per_feature=True,
                                                         floor=self.floor)
                tensor = torch.as_tensor(x, dtype=torch.float32, device=device)
                c, r = engine.contributions(params, tensor, eps)
                if self.combination == "standardized":
                    std = np.where(self.member_std > 0, self.member_std, 1.0)
                    c = c / std[:, None, None]
                    r = (r - self.member_mean[:, None]) / std[:, None]
                out[rows] = c.mean(axis=0) + cost / self.cost_unit
                rest[rows] = r.mean(axis=0)
        if relative:
            out -= self.feature_reference
        return unscorable_to_inf(out), unscorable_to_inf(rest)

    def fit_contribution_reference(self, X_sample, **score_options):
        """Set :attr:`feature_reference` and :attr:`contribution_quantiles` from fitting rows.

        Parameters
        ----------
        X_sample : ndarray of shape (n_ref, n_features)
            Raw fitting rows (a sample of them).
        **score_options
            ``engine``, ``device``, ``n_jobs``, ``working_memory``.
        """
        absolute, _ = self.contributions(X_sample, relative=False, **score_options)
        self.feature_reference = np.median(absolute, axis=0)
        self.contribution_quantiles = np.percentile(
            absolute - self.feature_reference, np.arange(101), axis=0
        )

    def fit_neighbors(self, neighbors, X, fit_rows, scores, labeled, working_memory):
        """Fit the known outliers' neighbour blend; return the blended training scores.

        The reference rows come from the fitting rows; rows outside a
        ``max_fit_rows`` sample are then scored as new rows.

        Parameters
        ----------
        neighbors : pyod_odim.neighbors.NeighborScorer
            Unfitted; kept as :attr:`neighbors`.
        X : ndarray of shape (n, d)
            The validated input, unscaled.
        fit_rows : ndarray of shape (n_fit,) or None
        scores : ndarray of shape (n,)
            The combined scores of every row of ``X``.
        labeled : ndarray of bool, shape (n_fit,)
        working_memory : float

        Returns
        -------
        blended : ndarray of shape (n,)
        """
        self.neighbors = neighbors
        if fit_rows is None:
            return neighbors.fit(self.scale(X), scores, labeled)
        neighbors.fit(self.scale(X[fit_rows]), scores[fit_rows], labeled)
        chunk = rows_per_chunk(working_memory, scoring_row_bytes(X.shape[1], 1, X.dtype.itemsize))
        blended = np.empty(X.shape[0])
        for rows in chunk_slices(X.shape[0], chunk):
            blended[rows] = neighbors.score(self.scale(X[rows]), scores[rows])
        return blended



def _split_layers(name, flat, shapes):
    """Per-layer views of one flat parameter array, its size checked against ``shapes``."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    if flat.ndim != 1 or flat.size != sum(sizes) or flat.dtype != np.float32:
        raise ValueError(f"array {name!r} holds {flat.dtype}{list(flat.shape)}, but this "
                         f"architecture needs float32[{sum(sizes)}]")
    bounds = np.cumsum([0] + sizes)
    return [flat[a:b].reshape(shape) for a, b, shape in zip(bounds[:-1], bounds[1:], shapes)]


def _stored_neighbors(fields, arrays, n_features):
    """The stored known-outlier neighbour blend, checked, or None."""
    settings = fields.get("neighbors")
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise ValueError("malformed neighbors entry")
    rows = {key: stored_array(arrays, f"neighbors/{key}") for key in NEIGHBOR_ARRAYS}
    for key in ("inlier_rows", "outlier_rows"):
        if rows[key].ndim != 2 or rows[key].shape[1] != n_features or rows[key].shape[0] < 1:
            raise ValueError(f"neighbors/{key} does not match the features")
    try:
        neighbors = NeighborScorer(float(settings["weight"]), int(settings["n_neighbors"]),
                                   float(settings["inlier_quantile"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("malformed neighbors entry") from None
    neighbors.set_reference(*(rows[key] for key in NEIGHBOR_ARRAYS))
    return neighbors

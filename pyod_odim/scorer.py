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
from .engines import make_engine, scores_in_bf16
from .neighbor_stage import STAGE_ARRAYS, CleanedNeighborStage
from .neighbors import NeighborScorer
from .scaling import FeatureScaling, network_box
from .sparse import dense, is_sparse

COMBINATIONS = ("mean", "standardized")

PRECISIONS = ("float32", "bfloat16")
"""tuple of str: the values of :attr:`FittedScorer.precision`."""

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
    stage : pyod_odim.neighbor_stage.CleanedNeighborStage or None
        The neighbour stage after ODIM's score (``score_stage``); it comes
        before the known outliers' blend.
    feature_reference : ndarray of shape (n_features,) or None
        What each feature costs a typical fitting row: the median of its
        combined expected negative log-likelihood over a sample of them
        (:meth:`fit_contribution_reference`).
    contribution_quantiles : ndarray of shape (101, n_features) or None
        Percentiles 0 to 100 of the fitting rows' contributions (after the
        reference), the cut-off bands of ``ODIM.explain_outlier``.
    precision : {"float32", "bfloat16"}, optional (default="float32")
        The products of the network's scoring passes: a bfloat16 fit's
        (``ODIM.precision_``). bfloat16 runs where the scoring engine has
        the units (:func:`pyod_odim.engines.scores_in_bf16`), float32 elsewhere
        (within the bfloat16 tolerance, docs/parameters.md), and so do the
        feature contributions, which add up to the scores; the exports
        always compute in full precision.

    Attributes
    ----------
    n_members : int
    n_features : int
    """

    def __init__(self, scaling, architecture, likelihood, params, score_eps,
                 combination="mean", member_mean=None, member_std=None,
                 neighbors=None, feature_reference=None, contribution_quantiles=None,
                 stage=None, precision="float32"):
        network.check_likelihood(likelihood)
        if combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.scaling = scaling
        self.architecture = architecture
        self.likelihood = likelihood
        self.params = params
        self.score_eps = score_eps
        self.combination = combination
        self.member_mean = member_mean
        self.member_std = member_std
        self.neighbors = neighbors
        self.stage = stage
        self.feature_reference = feature_reference
        self.contribution_quantiles = contribution_quantiles
        self.precision = precision

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
        if self.stage is not None:
            arrays.update({f"stage/{key}": getattr(self.stage, key + "_") for key in STAGE_ARRAYS})
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
            "precision": self.precision,
            "batch_norm": len(self.params["bn_mean"]) > 0,
            "neighbors": None if nb is None else {
                "weight": nb.weight, "n_neighbors": nb.n_neighbors,
                "inlier_quantile": nb.inlier_quantile},
            "stage": None if self.stage is None else {
                "share": float(self.stage.share), "n_neighbors": int(self.stage.n_neighbors),
                "max_reference": int(self.stage.max_reference)},
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
        # Files from before the field scored in float32; the constructor checks the value.
        precision = fields.get("precision", "float32")
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
                   feature_reference=reference, contribution_quantiles=quantiles,
                   stage=_stored_stage(fields, arrays, arch.n_features),
                   precision=precision)

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

    def bf16_products(self, engine, device):
        """Whether ``engine`` scores on ``device`` with bfloat16 products (:attr:`precision`)."""
        return scores_in_bf16(self.precision, engine.name, device)

    def losses(self, engine, params, X, score_eps):
        """Member losses (M, n) of scaled rows ``X`` (a tensor) in the scorer's precision."""
        return engine.score(params, X, score_eps, self.bf16_products(engine, X.device))

    def torch_params(self, device):
        """The parameters and draws as tensors on ``device`` (no copy on the CPU)."""
        params = network.params_from_numpy(self.params, device)
        return params, torch.as_tensor(self.score_eps, device=device)

    def chunk_rows(self, working_memory, input_itemsize=8, sparse=False):
        """Rows per scoring chunk under ``working_memory`` MiB (of a sparse input: ``sparse``)."""
        row_bytes = scoring_row_bytes(self.n_features, self.n_members, input_itemsize, sparse)
        return rows_per_chunk(working_memory, row_bytes)

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

    def member_losses(self, source, engine, chunk, device):
        """Member losses of consecutive row chunks, with their overshoot costs.

        Parameters
        ----------
        source : ndarray, scipy.sparse.csr_matrix or training rows
            Raw rows of shape (n, d), made dense and scaled chunk by chunk
            here, or the fit's scaled rows
            (:mod:`pyod_odim.training_rows`) on the engine's device.
        engine : engine of :mod:`pyod_odim.engines`
        chunk : int
            Rows per chunk.
        device : torch.device
            The engine's device.

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
        scaled = hasattr(source, "scoring_chunk")
        for rows in chunk_slices(source.n_rows if scaled else source.shape[0], chunk):
            if scaled:
                x, (tensor, cost) = None, source.scoring_chunk(rows)
            else:
                x, cost = self.scale_with_cost(dense(source[rows]))
                tensor = torch.as_tensor(x, dtype=torch.float32, device=device)
            yield rows, x, self.losses(engine, params, tensor, eps), cost

    # ------------------------------------------------------------ scoring
    def score(self, X, *, engine="auto", device=None, n_jobs=1, working_memory=256):
        """Scores of raw rows, chunk by chunk under ``working_memory``.

        Parameters
        ----------
        X : ndarray or scipy.sparse.csr_matrix of shape (n, n_features)
            Validated rows (see :func:`pyod_odim._validation.check_samples`);
            may have no rows. Sparse rows are made dense chunk by chunk.
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
        chunk = self.chunk_rows(working_memory, X.dtype.itemsize, is_sparse(X))
        scores = np.empty(X.shape[0])
        with torch_threads(n_jobs), cpu_fast_math(device):
            for rows, x, losses, cost in self.member_losses(X, engine, chunk, device):
                scores[rows] = self.combine(losses, cost)
                if self.stage is not None:
                    scores[rows] = self.stage.score(self.scaling.transform(dense(X[rows])),
                                                    scores[rows])
                if self.neighbors is not None:
                    # A row the network cannot score stays +inf through the blend.
                    blended = self.neighbors.score(x, scores[rows])
                    scores[rows] = np.where(scores[rows] == np.inf, np.inf, blended)
        return scores

    def score_training_rows(self, X, fitting, fit_rows, fit_losses, engine, working_memory):
        """Scores of every row of ``X`` at the end of a fit; sets the member moments.

        Each member's loss moments over the fitting rows
        (``member_mean``/``member_std``) are gathered in the same pass when
        the combination does not need them first.

        Parameters
        ----------
        X : ndarray or scipy.sparse.csr_matrix of shape (n, d)
            The validated input, unscaled.
        fitting : training rows (:mod:`pyod_odim.training_rows`)
            The scaled fitting rows (all of ``X`` when ``fit_rows`` is None)
            on the engine's device, with their overshoot costs.
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
        chunk = self.chunk_rows(working_memory, X.dtype.itemsize, is_sparse(X))
        device = fitting.device
        # Fitting rows are scored from their scaled copy, other rows scaled chunk by chunk.
        source = fitting if fit_rows is None else X
        if fit_losses is None and fit_rows is None and X.shape[0] <= chunk:
            params, eps = self.torch_params(device)
            # One chunk holds every row.
            fit_losses = self.losses(engine, params, fitting.scoring_chunk(slice(None))[0], eps)
        if fit_losses is not None:
            self.member_mean = fit_losses.mean(axis=1)
            self.member_std = fit_losses.std(axis=1)
            if fit_rows is None:
                return self.combine(fit_losses, fitting.costs)
        elif self.combination == "standardized":
            # Two passes: the moments weight every member, so they come first.
            moments = MemberMoments()
            for _, _, losses, _ in self.member_losses(fitting, engine, chunk, device):
                moments.add(losses)
            self.member_mean, self.member_std = moments.mean, moments.std
        else:
            # The plain mean needs no moments: gather them in the same pass.
            moments = MemberMoments()
            scores = np.empty(X.shape[0])
            for rows, _, losses, cost in self.member_losses(source, engine, chunk, device):
                scores[rows] = self.combine(losses, cost)
                if fit_rows is not None:
                    lo, hi = np.searchsorted(fit_rows, [rows.start, rows.stop])
                    losses = losses[:, fit_rows[lo:hi] - rows.start]
                moments.add(losses)
            self.member_mean, self.member_std = moments.mean, moments.std
            return scores
        scores = np.empty(X.shape[0])
        for rows, _, losses, cost in self.member_losses(source, engine, chunk, device):
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
        for ``"standardized"``, the members' offsets. With the neighbour
        :attr:`stage` (and ``relative``) the stage's split replaces it
        (:meth:`pyod_odim.neighbor_stage.CleanedNeighborStage.contributions`):
        ``score(x) = sum_j contribution_j(x) + rest(x)`` for the score before
        any known-outlier blend. The semi-supervised neighbour blend (a rank
        transform) is not part of it.

        Parameters
        ----------
        X : ndarray or scipy.sparse.csr_matrix of shape (n, n_features)
            Validated raw rows; sparse rows are made dense chunk by chunk.
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
        copies = 3 if is_sparse(X) else 2  # a sparse chunk's dense copy
        row_bytes = self.n_features * (copies * X.dtype.itemsize + 12 + 12 * self.n_members)
        chunk = rows_per_chunk(working_memory, row_bytes)
        out = np.empty(X.shape, dtype=np.float64)
        rest = np.empty(X.shape[0])
        with torch_threads(n_jobs), cpu_fast_math(device):
            for rows in chunk_slices(X.shape[0], chunk):
                x, cost = self.scaling.transform_clipped(dense(X[rows]), self.box,
                                                         per_feature=True, floor=self.floor)
                tensor = torch.as_tensor(x, dtype=torch.float32, device=device)
                c, r = engine.contributions(params, tensor, eps,
                                            self.bf16_products(engine, device))
                if self.combination == "standardized":
                    std = np.where(self.member_std > 0, self.member_std, 1.0)
                    c = c / std[:, None, None]
                    r = (r - self.member_mean[:, None]) / std[:, None]
                out[rows] = c.mean(axis=0) + cost / self.cost_unit
                rest[rows] = r.mean(axis=0)
        if relative:
            out -= self.feature_reference
            if self.stage is not None:
                out, rest = self.stage_contributions(X, out, rest + self.feature_reference.sum())
        return unscorable_to_inf(out), unscorable_to_inf(rest)

    def stage_contributions(self, X, odim_contributions, odim_rest):
        """The stage's split of raw rows ``X``, from ODIM's (relative) split of them."""
        odim_scores = odim_contributions.sum(axis=1) + odim_rest
        return self.stage.contributions(self.scaling.transform(dense(X)), odim_scores,
                                        odim_contributions, odim_rest)

    def fit_contribution_reference(self, X_sample, **score_options):
        """Set :attr:`feature_reference` and :attr:`contribution_quantiles` from fitting rows.

        Parameters
        ----------
        X_sample : ndarray or scipy.sparse.csr_matrix of shape (n_ref, n_features)
            Raw fitting rows (a sample of them).
        **score_options
            ``engine``, ``device``, ``n_jobs``, ``working_memory``.
        """
        absolute, rest = self.contributions(X_sample, relative=False, **score_options)
        self.feature_reference = np.median(absolute, axis=0)
        relative = absolute - self.feature_reference
        if self.stage is not None:
            relative = self.stage_contributions(X_sample, relative,
                                                rest + self.feature_reference.sum())[0]
        self.contribution_quantiles = np.percentile(relative, np.arange(101), axis=0)

    def fit_stage(self, stage, X, fit_rows, scores, labeled, seed, working_memory):
        """Fit the neighbour stage on the fitting rows; return every row's stage scores.

        ``stage`` (a :class:`~pyod_odim.neighbor_stage.CleanedNeighborStage`,
        kept as :attr:`stage`) takes its reference rows from the fitting rows
        of ``X`` (raw, all rows when ``fit_rows`` is None), leaving out the
        known outliers ``labeled`` (over the fitting rows, or None); ``scores``
        are ODIM's scores of every row, ``seed`` seeds the reference subset.
        Rows outside a ``max_fit_rows`` sample are then scored as new rows,
        chunk by chunk under ``working_memory``.
        """
        self.stage = stage
        fit_scores = scores if fit_rows is None else scores[fit_rows]
        rows = stage.reference_rows(fit_scores, seed, None if labeled is None else ~labeled)
        source = rows if fit_rows is None else fit_rows[rows]
        # Scaled chunk by chunk straight into float32: no float64 copy of the rows.
        reference = np.empty((len(source), X.shape[1]), dtype=np.float32)
        stage.set_reference(_by_chunks(X, working_memory,
                                       lambda part: self.scaling.transform(dense(X[source[part]])),
                                       out=reference))
        del reference
        # Distances chunk by chunk: no scaled copy of every row.
        distance = _by_chunks(X, working_memory,
                              lambda part: stage.distance(self.scaling.transform(dense(X[part]))))
        stage.fit_moments(fit_scores, distance if fit_rows is None else distance[fit_rows])
        return stage.combine(scores, distance)

    def fit_neighbors(self, neighbors, X, fit_rows, scores, labeled, working_memory):
        """Fit the known outliers' neighbour blend; return the blended training scores.

        The reference rows come from the fitting rows; rows outside a
        ``max_fit_rows`` sample are then scored as new rows.

        Parameters
        ----------
        neighbors : pyod_odim.neighbors.NeighborScorer
            Unfitted; kept as :attr:`neighbors`.
        X : ndarray or scipy.sparse.csr_matrix of shape (n, d)
            The validated input, unscaled; sparse rows are made dense chunk
            by chunk (the reference rows kept are dense).
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
        sparse = is_sparse(X)
        chunk = rows_per_chunk(working_memory,
                               scoring_row_bytes(X.shape[1], 1, X.dtype.itemsize, sparse))
        X_fit, fit_scores = (X, scores) if fit_rows is None else (X[fit_rows], scores[fit_rows])
        if sparse:
            fitted = neighbors.fit(lambda index: self.scale(dense(X_fit[index])), fit_scores,
                                   labeled, chunk_rows=chunk)
        else:
            fitted = neighbors.fit(self.scale(X_fit), fit_scores, labeled)
        if fit_rows is None:
            return fitted
        return _by_chunks(X, working_memory,
                          lambda rows: neighbors.score(self.scale(dense(X[rows])), scores[rows]))


def _by_chunks(X, working_memory, score_rows, out=None):
    """``score_rows(rows)`` over row slices sized by ``working_memory`` for ``X``'s width.

    The slices cover ``X``'s rows, or ``out``'s (filled in place) when given.
    """
    chunk = rows_per_chunk(working_memory, scoring_row_bytes(X.shape[1], 1, X.dtype.itemsize,
                                                          is_sparse(X)))
    out = np.empty(X.shape[0]) if out is None else out
    for rows in chunk_slices(out.shape[0], chunk):
        out[rows] = score_rows(rows)
    return out



def _split_layers(name, flat, shapes):
    """Per-layer views of one flat parameter array, its size checked against ``shapes``."""
    sizes = [int(np.prod(shape)) for shape in shapes]
    if flat.ndim != 1 or flat.size != sum(sizes) or flat.dtype != np.float32:
        raise ValueError(f"array {name!r} holds {flat.dtype}{list(flat.shape)}, but this "
                         f"architecture needs float32[{sum(sizes)}]")
    bounds = np.cumsum([0] + sizes)
    return [flat[a:b].reshape(shape) for a, b, shape in zip(bounds[:-1], bounds[1:], shapes)]


def _stored_stage(fields, arrays, n_features):
    """The neighbour stage of a model file, or None (also for files from before it)."""
    settings = fields.get("stage")
    if settings is None:
        return None
    try:
        stage = CleanedNeighborStage(float(settings["share"]), int(settings["n_neighbors"]),
                                     int(settings["max_reference"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("malformed stage entry") from None
    reference = stored_array(arrays, "stage/reference")
    moments = stored_array(arrays, "stage/moments")
    if reference.ndim != 2 or reference.shape[1] != n_features or reference.shape[0] < 1:
        raise ValueError("stage/reference does not match the features")
    if moments.shape != (4,) or not (moments[[1, 3]] > 0).all():
        raise ValueError("stage/moments is malformed")
    return stage.set_reference(reference, moments)


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

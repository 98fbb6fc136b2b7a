"""ODIM as a PyOD detector."""

import inspect
import numbers
import time
import warnings

import numpy as np
import torch
from pyod.models.base import BaseDetector
from sklearn.utils.validation import check_is_fitted

from . import gmm, model_file, network, thresholds
from ._device import cpu_fast_math, resolve_device
from ._threads import resolve_n_jobs, torch_threads
from ._validation import FLOAT_DTYPES, check_samples, column_names, seed_from, stored_field
from .defaults import check_parameters, training_config
from .engines import make_engine
from .known_outliers import check_labels, label_aware_criterion
from .neighbors import NeighborScorer
from .progress import make_progress
from .sampling import reference_rows, sample_rows
from .scaling import FeatureScaling
from .scorer import FittedScorer
from .training import train_ensemble


class ODIM(BaseDetector):
    """Outlier detection via the inlier-memorization effect (ODIM).

    Deep generative models fit inliers before they fit outliers. ODIM trains
    an ensemble of importance-weighted autoencoders (IWAE) for a short time
    and scores each row by its negative IWAE bound: early in training the
    losses of outliers stand apart. Every ``check_every`` updates it fits a
    two-component Gaussian mixture to each member's min-max normalized
    losses and keeps the checkpoint whose components are farthest apart
    (Wasserstein distance); ``patience`` checks without a new maximum end a
    member's run. The score of a row is the mean over members of its loss at
    each member's kept checkpoint.

    All members train as one vectorized network (stacked weights and batched
    matmuls), on CUDA when available. Every ``"auto"`` parameter is settled
    at fit time from the data (:mod:`pyod_odim.defaults`); ``get_params``
    keeps what was given.

    Parameters
    ----------
    contamination : float in (0., 0.5] or thresholder, optional (default=0.1)
        The expected proportion of outliers; sets ``threshold_``. Or a
        thresholder object such as PyThresh's ``IQR()``
        (:mod:`pyod_odim.thresholds`): it labels the training scores, and
        ``score_threshold_`` is the cut in score units that gives those
        labels. ``predict`` keeps PyOD's behaviour, the thresholder's
        ``predict`` on the new scores; compare
        ``decision_function(X) > score_threshold_`` for labels row by row.

    n_estimators : int or None, optional (default=None)
        Number of independently initialized members. ``None``: 10 (the
        paper's), or 5 above 256 features (:data:`pyod_odim.defaults.WIDE_DEFAULTS`).

    n_samples_iwae : int, optional (default=50)
        Importance samples ``K`` per row in the IWAE bound that scores rows:
        at every check, in ``decision_scores_`` and in ``decision_function``.

    n_samples_train : int, "auto" or None, optional (default="auto")
        Importance samples per row in the training updates. ``"auto"``: 10,
        or 5 above 256 features; ``None`` uses ``n_samples_iwae`` as the
        paper does. An update's cost grows linearly with it.

    n_samples_check : int or None, optional (default=None)
        Importance samples per row when the checks score the selection set
        (the first draws of the fixed scoring draws); ``None`` uses
        ``n_samples_train``. At most ``n_samples_iwae``.

    check_every : int, optional (default=10)
        Updates between two checks, ``N_u`` (paper: 10).

    patience : int or "auto", optional (default="auto")
        Checks without a new best distance before a member stops,
        ``N_pat``. ``"auto"``: 10 (the paper's), or 5 above 256 features.

    max_updates : int, optional (default=5000)
        Hard cap on updates; fits normally stop earlier by patience.

    min_updates : int or "auto", optional (default="auto")
        Warm-up: checks before this many updates are recorded in
        ``history_`` but cannot be kept as a checkpoint, and patience counts
        only after it. ``"auto"``: 100, or above 256 features 150 and at
        least 5 passes over the rows
        (:func:`pyod_odim.defaults.warm_up_updates`). 0 is the paper's
        procedure.

    smoothing : int, optional (default=3)
        The selection criterion of a check is the mean GMM-2 distance of
        the member's last ``smoothing`` checks (fewer at the start); a
        checkpoint is kept, and patience reset, when that mean reaches a new
        maximum. 1 is the paper's single-check rule.

    checkpoint : {"auto", "best", "last"}, optional (default="auto")
        The network each member keeps. "best": its check with the largest
        (smoothed) GMM-2 distance, the paper's rule. "last": the state it
        stops in, ``patience`` checks after that best one (or at
        ``max_updates``). "auto": "last" with the rectified decoder, else
        "best" (:data:`pyod_odim.defaults.CHECKPOINT_FOR_LIKELIHOOD`).

    batch_size : int, optional (default=128)
        Rows per update and member (paper: 128); smaller data uses all rows.

    lr : float or "auto", optional (default="auto")
        Adam learning rate. ``"auto"``: 1e-3 (the authors' code), or 2e-3
        with the rectified decoder (:data:`pyod_odim.defaults.LEARNING_RATES`).

    hidden_sizes : tuple of int or None, optional (default=None)
        Encoder widths, mirrored by the decoder. ``None``: (32, 16) up to
        100 features, else (128, 64).

    latent_dim : int or None, optional (default=None)
        Latent size; ``None`` gives 8 up to 100 features (4 for at most 7, 2
        for at most 3), else 32.

    likelihood : {"auto", "gaussian", "rectified", "bernoulli"}, optional (default="auto")
        Decoder distribution of each feature. "gaussian": a normal with a
        sigmoid mean, the paper's. "rectified": ``max(0, normal)``, a point
        mass at 0 (the training minimum) plus a normal density above it,
        for non-negative features with many exact zeros, such as pooled
        post-ReLU image embeddings. "bernoulli" for binary data. "auto":
        "rectified" for wide data with many values at their feature's
        minimum (:func:`pyod_odim.defaults.likelihood_for_data`), else
        "gaussian"; ``likelihood_`` tells which.

    batch_norm : bool, optional (default=True)
        Batch-normalize every hidden layer (no affine part), as the authors'
        networks do; scoring uses the running statistics. False fits about
        2.5 times faster.

    distance : {"sigma", "variance"}, optional (default="sigma")
        Distance between the two mixture components: "sigma" is the paper's
        squared 2-Wasserstein distance ``(mu1-mu2)^2 + (s1-s2)^2``;
        "variance" uses variances in place of standard deviations, as the
        authors' published code does.

    selection_size : int, "auto" or None, optional (default="auto")
        Checks score at most this many rows (a fixed random subset); every
        row is scored once at the end with each member's kept checkpoint.
        ``"auto"``: 8192, or 2048 above 256 features. ``None`` always uses
        all rows (the paper's protocol).

    combination : {"mean", "standardized"}, optional (default="mean")
        How member scores merge: the plain mean of losses, or the mean after
        standardizing each member by its training scores.

    use_labels : bool, optional (default=False)
        Semi-supervised mode. When True, ``fit(X, y)`` treats rows with
        ``y == 1`` as known outliers: they are excluded from the IWAE term and
        their likelihood is pushed down by a CUBO term (paper section 5.2),
        and the scores blend ODIM's likelihood with the known outliers'
        neighbour ratio (``neighbor_weight``). When False, ``y`` is ignored.

    cubo_weight : float, optional (default=1.0)
        Weight ``gamma`` of the CUBO term in semi-supervised mode.

    cubo_order : float, optional (default=2.0)
        Order ``u > 1`` of the chi upper bound.

    label_selection : {"rank", "gmm"}, optional (default="rank")
        Checkpoint criterion in semi-supervised mode: "rank" maximizes the
        mean rank of the known outliers among the selection set's losses,
        with the GMM distance breaking ties; "gmm" is the unsupervised GMM
        distance.

    neighbor_weight : float in [0, 1], optional (default=0.8)
        Semi-supervised mode only: share of the known outliers' neighbour
        ratio in the scores (:mod:`pyod_odim.neighbors`). The unlabeled rows
        that ODIM scores lowest (up to ``inlier_quantile``) are the
        reference inliers; a row's ratio ``d_in / (d_in + d_out)`` compares
        its mean distances to its ``n_neighbors`` nearest reference inliers
        and known outliers; the score is ``(1 - neighbor_weight)`` times the
        rank of ODIM's score plus ``neighbor_weight`` times the rank of the
        ratio (ranks among the training rows, in [0, 1]). 0 keeps ODIM's
        likelihood scores alone.

    n_neighbors : int, optional (default=5)
        Neighbours on each side of the neighbour ratio.

    inlier_quantile : float in (0, 1], optional (default=0.7)
        Unlabeled rows whose ODIM score is at most this quantile of the
        unlabeled rows' scores are the reference inliers of the neighbour
        ratio.

    engine : {"auto", "kernel", "inductor", "eager"}, optional (default="auto")
        What runs the network's arithmetic (:mod:`pyod_odim.engines`):
        "kernel" the package's fused C++ CPU kernels, "inductor" PyTorch
        compiled by ``torch.compile`` (tens of seconds of compilation the
        first time a shape is seen), "eager" plain PyTorch ("none" is an
        alias). "auto" runs the kernels on the CPU when they are built, else
        eager PyTorch. All give the same scores within float32 rounding.

    device : str, torch.device or None, optional (default=None)
        Training device; ``None`` uses CUDA when available, else the CPU.

    n_jobs : int or None, optional (default=1)
        CPU threads of a fit or a scoring call (PyTorch's pool, the C++
        kernels, the GMM-2 fits); -1 uses every CPU. The caller's PyTorch
        setting is restored afterwards. Results do not depend on it.

    random_state : int, numpy RandomState/Generator or None, optional (default=None)
        Seeds every random draw (initialization, minibatches, importance
        samples). The global NumPy and torch RNGs are never used.

    verbose : int, optional (default=0)
        0 silent; 1 a progress bar on a terminal; 2 a line per check.

    max_fit_rows : int or None, optional (default=None)
        Train on a uniform random sample of at most this many rows, drawn
        with ``random_state`` (:mod:`pyod_odim.sampling`); the scaling, the
        network and the members' loss moments come from the sample, and
        every row of ``X`` is still scored into ``decision_scores_``.
        ``None``, or a cap of at least ``n_samples``, trains on all rows.

    working_memory : float, optional (default=256)
        MiB of temporaries (scaled rows, member losses) that scoring may
        hold on the host: scoring and ``fit``'s scaling work in chunks that
        fit it. Scores do not depend on it. The input, the float32 training
        rows and the outputs are not counted; with ``selection_size=None``
        the checks also keep every training row's member losses.

    scaling_fence : float or None, optional (default=1000)
        Features are min-max scaled with bounds taken from the fitting rows;
        a feature's highest (or lowest) values do not set its bound when a
        gap more than ``scaling_fence`` times the span of all values below
        (above) it separates them from the rest, up to 1 % of the rows
        (:func:`pyod_odim.scaling.fenced_bounds`). ``None`` always uses the
        minimum and maximum (the paper's scaling). The network sees values
        clipped to ten bound-widths beyond the bounds ([0, 1] for the
        Bernoulli likelihood), and a value beyond that adds
        ``0.5 * exp(6) * excess**2`` to the score (:mod:`pyod_odim.scaling`).

    Attributes
    ----------
    decision_scores_ : numpy array of shape (n_samples,)
        The outlier scores of the training data (higher is more abnormal).

    threshold_ : float
        The ``contamination`` quantile of ``decision_scores_``; for a
        thresholder, what PyOD sets: the thresholder's ``thresh_``, or, when
        it has none, the share of training rows it labelled 1.

    score_threshold_ : float
        The cut in score units: training rows scoring above it are those
        labelled 1 (:func:`pyod_odim.thresholds.score_cut` for a thresholder).

    labels_ : int, either 0 or 1
        Binary labels of the training data (1 = outlier).

    history_ : dict
        ``"update"`` (n_checks,) update count at each check;
        ``"distance"`` (n_checks, n_estimators) each member's selection
        criterion there (NaN after the member stopped); ``"raw_distance"``
        the same before smoothing.

    best_update_ : numpy array of shape (n_estimators,)
        Update of each member's kept checkpoint.

    best_distance_ : numpy array of shape (n_estimators,)
        Best selection criterion of each member.

    n_updates_ : int
        Updates run before every member stopped.

    gmm_backend_ : str
        "cpp" or "numpy": which GMM-2 implementation ran.

    device_ : str
        Device the fit ran on.

    engine_ : str
        "kernel", "inductor" or "eager": what ran the network.

    likelihood_ : str
        The decoder distribution the fit used.

    timings_ : dict
        Seconds spent in "train", "score" (checks), "gmm", "final_score".

    scorer_ : pyod_odim.scorer.FittedScorer
        Everything that scores a row: scaling, network, draws, combination.

    likelihood_scores_ : numpy array of shape (n_samples,)
        ODIM's own training scores, before any blend with the known
        outliers' neighbour ratio; equal to ``decision_scores_`` unless
        ``label_neighbors_`` is set.

    label_neighbors_ : pyod_odim.neighbors.NeighborScorer or None
        The known outliers' neighbour scorer blended into the scores
        (semi-supervised mode with ``neighbor_weight > 0``), else None.

    References
    ----------
    Kim, D., Hwang, J., Lee, J., Kim, K. and Kim, Y., "ODIM: Outlier
    detection via likelihood of under-fitted generative models", ICML 2024.

    Examples
    --------
    >>> from pyod.utils.data import generate_data
    >>> from pyod_odim import ODIM
    >>> X, y = generate_data(n_train=500, train_only=True, random_state=0)
    >>> clf = ODIM(n_estimators=3, random_state=0).fit(X)
    >>> clf.decision_scores_.shape
    (500,)
    """

    def __init__(self, contamination=0.1, n_estimators=None, n_samples_iwae=50,
                 n_samples_train="auto", n_samples_check=None, check_every=10,
                 patience="auto", max_updates=5000, min_updates="auto", smoothing=3,
                 checkpoint="auto", batch_size=128, lr="auto", hidden_sizes=None,
                 latent_dim=None, likelihood="auto", batch_norm=True, distance="sigma",
                 selection_size="auto", combination="mean", use_labels=False, cubo_weight=1.0,
                 cubo_order=2.0, label_selection="rank", neighbor_weight=0.8, n_neighbors=5,
                 inlier_quantile=0.7, engine="auto", device=None, n_jobs=1, random_state=None,
                 verbose=0, max_fit_rows=None, working_memory=256, scaling_fence=1000.0):
        super().__init__(contamination=contamination)
        self.n_estimators = n_estimators
        self.n_samples_iwae = n_samples_iwae
        self.n_samples_train = n_samples_train
        self.n_samples_check = n_samples_check
        self.check_every = check_every
        self.patience = patience
        self.max_updates = max_updates
        self.min_updates = min_updates
        self.smoothing = smoothing
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.lr = lr
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.batch_norm = batch_norm
        self.distance = distance
        self.selection_size = selection_size
        self.combination = combination
        self.use_labels = use_labels
        self.cubo_weight = cubo_weight
        self.cubo_order = cubo_order
        self.label_selection = label_selection
        self.neighbor_weight = neighbor_weight
        self.n_neighbors = n_neighbors
        self.inlier_quantile = inlier_quantile
        self.engine = engine
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.max_fit_rows = max_fit_rows
        self.working_memory = working_memory
        self.scaling_fence = scaling_fence

    def fit(self, X, y=None):
        """Fit the detector.

        Parameters
        ----------
        X : numpy array of shape (n_samples, n_features)
            The input samples.

        y : numpy array of shape (n_samples,), optional (default=None)
            Ignored unless ``use_labels=True``; then 1 marks a known outlier
            and 0 an unlabeled row.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, labeled = self._validate(X, y)
        seed = seed_from(self.random_state)
        # The fitting rows: all of X, or a uniform sample of max_fit_rows.
        fit_rows = sample_rows(X.shape[0], self.max_fit_rows, seed)
        X_fit, labeled = (X, labeled) if fit_rows is None else (
            X[fit_rows], None if labeled is None else labeled[fit_rows])
        n_unlabeled = X_fit.shape[0] - (0 if labeled is None else int(labeled.sum()))
        arch, config = training_config(self.get_params(), X_fit, n_unlabeled,
                                       resolve_n_jobs(self.n_jobs))
        device = resolve_device(self.device)
        scorer = FittedScorer(FeatureScaling.fit(X_fit, self.scaling_fence), arch,
                              config.likelihood, params=None, score_eps=None,
                              combination=self.combination)
        # The fitting rows that set what each feature costs a typical row.
        X_reference = X_fit[reference_rows(X_fit.shape[0], seed)]
        X_scaled, fit_costs = scorer.scaled_tensor(X_fit, device, config.n_members,
                                                      self.working_memory)
        del X_fit  # the scaled copy is all training needs
        engine = make_engine(self.engine, device, arch, config.likelihood, config.cubo_weight,
                             config.cubo_order, config.n_threads)
        with torch_threads(config.n_threads), cpu_fast_math(device):
            result, detached = self._train(X_scaled, fit_costs, labeled, arch, config, engine,
                                           seed)
            started = time.perf_counter()
            scores = self._score_training_rows(scorer, result, X, X_scaled, fit_costs, fit_rows,
                                               detached, engine, X_reference, config.n_threads)
            final_seconds = time.perf_counter() - started
        self._keep_training_state(scorer, result, config.likelihood, device, engine.name,
                                  final_seconds)
        self.likelihood_scores_ = scores
        self.decision_scores_ = self._blend_known_outliers(X, fit_rows, scores, labeled,
                                                           config.n_threads)
        self._process_decision_scores()
        self.score_threshold_ = self._score_threshold()
        return self

    # ------------------------------------------------------------ fit's steps
    def _validate(self, X, y):
        """Checked rows and known outliers (None unless ``use_labels``); sets the input's shape."""
        names = column_names(X)
        X = check_samples(X, min_samples=2, dtype=FLOAT_DTYPES)
        check_parameters(self.get_params())
        labeled = check_labels(y, X.shape[0]) if self.use_labels else None
        self._set_n_classes(None if self.use_labels else y)
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X, labeled

    def _train(self, X_scaled, fit_costs, labeled, arch, config, engine, seed):
        """Train the ensemble; also whether the rows were clamped for it."""
        generator = torch.Generator(device=X_scaled.device)
        generator.manual_seed(seed)
        labeled_index = criterion = None
        if labeled is not None and labeled.any():
            labeled_index = torch.as_tensor(np.flatnonzero(labeled), device=X_scaled.device)
            if self.label_selection == "rank":
                criterion = label_aware_criterion(labeled, config.distance, config.n_threads)
        # Training and the checks see values detached by the fence at the
        # bounds (the scoring box would let them dominate every loss).
        detached = bool(fit_costs.any()) or bool(
            ((X_scaled < 0.0) | (X_scaled > 1.0)).any().item())
        progress = make_progress(self.verbose, config.max_updates)
        try:
            result = train_ensemble(X_scaled.clamp(0.0, 1.0) if detached else X_scaled, arch,
                                    config, generator, engine, labeled_index=labeled_index,
                                    selection_criterion=criterion, on_check=progress.update)
        finally:
            progress.close()
        return result, detached

    def _score_training_rows(self, scorer, result, X, X_scaled, fit_costs, fit_rows, detached,
                             engine, X_reference, n_threads):
        """Give ``scorer`` the kept networks; score every row of ``X`` with them."""
        scorer.params = network.params_to_numpy(result.params)
        scorer.score_eps = result.score_eps.cpu().numpy()
        scores = scorer.score_training_rows(X, X_scaled, fit_costs, fit_rows,
                                            None if detached else result.train_losses, engine,
                                            self.working_memory)
        scorer.fit_contribution_reference(X_reference, engine=self.engine,
                                          device=X_scaled.device, n_jobs=n_threads,
                                          working_memory=self.working_memory)
        return scores

    def _keep_training_state(self, scorer, result, likelihood, device, engine_name,
                             final_seconds):
        self.scorer_ = scorer
        self.history_ = {"update": result.check_updates, "distance": result.check_distances,
                         "raw_distance": result.check_raw}
        self.best_update_ = result.best_update
        self.best_distance_ = result.best_distance
        self.n_updates_ = result.n_updates
        self.gmm_backend_ = gmm.BACKEND
        self.device_ = str(device)
        self.engine_ = engine_name
        self.likelihood_ = likelihood
        self.timings_ = dict(result.timings, final_score=final_seconds)

    def _blend_known_outliers(self, X, fit_rows, scores, labeled, n_threads):
        """The training scores blended with the known outliers' neighbour ratio, if any."""
        if labeled is None or not labeled.any() or self.neighbor_weight <= 0:
            return scores
        neighbors = NeighborScorer(float(self.neighbor_weight), int(self.n_neighbors),
                                   float(self.inlier_quantile), n_threads)
        return self.scorer_.fit_neighbors(neighbors, X, fit_rows, scores, labeled,
                                          self.working_memory)

    def _score_threshold(self):
        """The cut in score units that gives ``labels_``."""
        if isinstance(self.contamination, numbers.Real):
            return float(self.threshold_)
        # PyOD's threshold_ is on the thresholder's own scale: derive the cut
        # in score units that gives the thresholder's training labels.
        cut, n_differ = thresholds.score_cut(self.decision_scores_, self.labels_)
        if n_differ:
            warnings.warn(
                f"{type(self.contamination).__name__}'s labels are not a cut on the "
                f"scores: score_threshold_={cut:.6g} labels {n_differ} of "
                f"{len(self.labels_)} training rows differently", UserWarning, stacklevel=3)
        return cut

    def decision_function(self, X):
        """Predict raw anomaly scores of X using the fitted detector.

        The same rows always get the same scores: the importance samples are
        drawn once at fit time, and a row's score does not depend on the
        other rows passed with it.

        Parameters
        ----------
        X : numpy array of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        anomaly_scores : numpy array of shape (n_samples,)
            The anomaly score of the input samples (higher is more abnormal).
        """
        check_is_fitted(self, ["scorer_", "decision_scores_"])
        X = check_samples(X, n_features=self.n_features_in_, dtype=FLOAT_DTYPES)
        return self._score_samples(X)

    def feature_contributions(self, X):
        """Each feature's share of each row's outlier score.

        ODIM's decoder factorizes over features, so a row's loss splits
        into one term per feature. For member ``m``, feature ``j`` and the
        normalized importance weights ``w~_k`` of the fixed draws that score
        the row, the term is the feature's expected negative log-likelihood
        ``sum_k w~_k * (-log p(x_j | z_k))``, plus, for a value beyond the
        scaling bounds, its overshoot cost (:mod:`pyod_odim.scaling`).
        Members combine as the scores do (mean, or mean after dividing by
        each member's loss deviation with ``combination="standardized"``).
        The contribution is that term minus what the feature costs a typical
        training row (the median over a sample of 512 fitting rows, kept
        from ``fit``), so a feature that is hard for every row does not
        dominate; positive values push the row towards outlier. Exactly,

        ``likelihood_score(x) = sum_j contribution_j(x) + sum_j reference_j + rest(x)``

        where ``rest`` is the latent part of the IWAE bound (the weighted
        ``log q(z|x) - log p(z)``, the weights' entropy and ``log K``) and
        ``likelihood_score`` is ``decision_function`` in unsupervised mode;
        with the semi-supervised neighbour blend it is ODIM's likelihood
        part (``likelihood_scores_`` for training rows), not the blend.

        Parameters
        ----------
        X : numpy array of shape (n_samples, n_features)
            Rows to explain: training rows or new ones.

        Returns
        -------
        contributions : numpy array of shape (n_samples, n_features)
            Higher is more abnormal; computed in chunks under
            ``working_memory``, equal (to float32 rounding) on every engine.
        """
        check_is_fitted(self, ["scorer_", "decision_scores_"])
        X = check_samples(X, n_features=self.n_features_in_, dtype=FLOAT_DTYPES)
        return self.scorer_.contributions(
            X, engine=self.engine, device=self.device,
            n_jobs=resolve_n_jobs(self.n_jobs), working_memory=self.working_memory,
        )[0]

    def explain_outlier(self, ind, columns=None, cutoffs=None, feature_names=None,
                        file_name=None, file_type=None, *, X=None, ax=None):
        """Chart a row's feature contributions with the training rows' cut-off bands.

        PyOD's ``COPOD.explain_outlier`` and ``ECOD.explain_outlier`` in the
        same shape, with one difference: those detectors keep their training
        rows and ``ind`` indexes them; ODIM does not keep its training rows
        (model size, and a saved model holds no data), so pass the rows as
        ``X`` (keyword-only, after PyOD's parameters) and ``ind`` indexes
        ``X``, e.g. ``clf.explain_outlier(7, X=X_train)``. A bar per feature
        is the row's contribution (:meth:`feature_contributions`); the
        dashed segments are the ``cutoffs`` quantiles of the fitting rows'
        contributions (a sample of 512 of them, kept by ``fit``); bars above
        the highest band are red. See :func:`pyod_odim.explain.explain_outlier`.

        Parameters
        ----------
        ind : int
            The row of ``X`` to explain.

        columns : list of int or None, optional (default=None)
            Feature indices to plot; ``None`` plots every feature.

        cutoffs : list of float in (0., 1.) or None, optional (default=None)
            The cut-off bands' quantiles; ``None`` is ``[0.95, 0.99]``.

        feature_names : list of str or None, optional (default=None)
            One display name per feature; ``None`` uses
            ``feature_names_in_`` when ODIM was fitted on a DataFrame.

        file_name : str or None, optional (default=None)
            Save the figure as ``file_name.file_type`` (PyOD's convention).

        file_type : str or None, optional (default=None)
            ``"png"`` when None.

        X : array-like of shape (n_samples, n_features)
            The rows ``ind`` picks from (required).

        ax : matplotlib Axes or None, optional (default=None)
            Where to draw; ``None`` creates a new figure.

        Returns
        -------
        fig : matplotlib Figure
            The chart (PyOD's version shows it and returns nothing).

        Raises
        ------
        ValueError
            No ``X``; a bad ``ind``, ``columns``, ``feature_names`` or
            ``cutoffs``.
        """
        from .explain import explain_outlier

        return explain_outlier(self, ind, X=X, columns=columns, cutoffs=cutoffs,
                               feature_names=feature_names, file_name=file_name,
                               file_type=file_type, ax=ax)

    def save(self, path):
        """Save the fitted detector to a model file (arrays and JSON, no pickle).

        Load it with :func:`pyod_odim.load`, also in later versions of this
        package: the loaded detector gives the same ``decision_function``,
        ``predict`` and ``predict_proba`` values. Loading a file runs no code
        from it (:mod:`pyod_odim.model_file`).

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically.
        """
        model_file.save(path, *self._get_fitted_state())

    def to_torchscript(self, path, chunk_rows=None, precision="float64"):
        """Export the scorer as a TorchScript module that runs without this package.

        The module maps raw float rows of shape (n, n_features) to scores of
        shape (n,), float64: scaling, every member under its fixed draws,
        and the combination, as ``decision_function`` computes them. Load it
        with ``torch.jit.load(path)`` (``map_location="cuda"`` to score on a
        GPU) in Python, or from LibTorch in C++ (:mod:`pyod_odim.export`).

        Parameters
        ----------
        path : str or os.PathLike
        chunk_rows : int or None, optional (default=None)
            Rows per chunk of the module's forward pass (None: sized like
            the PyTorch engine's chunks); scores do not depend on it.
        precision : {"float64", "float32"}, optional (default="float64")
            The network's arithmetic: "float64" matches
            ``decision_function`` to a few 1e-6 relative, "float32" is
            faster and matches to about 1e-5.

        Returns
        -------
        module : torch.jit.ScriptModule
            The module written.
        """
        from .export import to_torchscript

        return to_torchscript(self, path, chunk_rows, precision)

    def to_onnx(self, path, precision="float64"):
        """Export the scorer as an ONNX graph for ONNX Runtime (extra ``onnx``).

        Same inputs and outputs as :meth:`to_torchscript`
        (:mod:`pyod_odim.export`).

        Parameters
        ----------
        path : str or os.PathLike
        precision : {"float64", "float32"}, optional (default="float64")
            As for :meth:`to_torchscript`.
        """
        from .export import to_onnx

        to_onnx(self, path, precision=precision)

    def _score_samples(self, X):
        """Scores of validated rows (``decision_function`` without the checks)."""
        return self.scorer_.score(X, engine=self.engine, device=self.device,
                                  n_jobs=resolve_n_jobs(self.n_jobs),
                                  working_memory=self.working_memory)

    @property
    def label_neighbors_(self):
        """pyod_odim.neighbors.NeighborScorer or None: the known-outlier blend."""
        return self.scorer_.neighbors

    # ------------------------------------------------------------ fitted state
    _TRAINING_ARRAYS = ("decision_scores", "labels", "best_update", "best_distance",
                        "history/update", "history/distance", "history/raw_distance")

    def _get_fitted_state(self):
        """The fitted state as arrays by name and JSON-ready fields (what a model file holds).

        With a thresholder as ``contamination`` the fields keep what it
        decided: the cut in score units and the share of rows it labelled 1.
        """
        check_is_fitted(self, ["scorer_", "decision_scores_", "threshold_"])
        arrays = dict(self.scorer_.to_arrays(), **{
            "decision_scores": np.asarray(self.decision_scores_, dtype=np.float64),
            "labels": np.asarray(self.labels_, dtype=np.int64),
            "best_update": np.asarray(self.best_update_, dtype=np.int64),
            "best_distance": np.asarray(self.best_distance_, dtype=np.float64)})
        arrays.update({f"history/{k}": np.asarray(v) for k, v in self.history_.items()})
        scores = getattr(self, "likelihood_scores_", None)
        if scores is not None and scores is not self.decision_scores_:
            arrays["likelihood_scores"] = np.asarray(scores, dtype=np.float64)
        contamination, thresholder = self.contamination, None
        if not isinstance(contamination, numbers.Real):
            thresholder = thresholds.thresholder_info(contamination, self.threshold_)
            contamination = float(np.mean(np.asarray(self.labels_) == 1))
        names = getattr(self, "feature_names_in_", None)
        fields = dict(
            self.scorer_.to_fields(), params=model_file.json_params(self.get_params()),
            # What PyOD's _process_decision_scores derived for predict_proba's "unify".
            score_moments=[float(self._mu), float(self._sigma)],
            threshold=thresholds.fitted_score_threshold(self),
            contamination=float(contamination), thresholder=thresholder,
            n_classes=int(getattr(self, "_classes", 2)),
            feature_names=None if names is None else [str(n) for n in names],
            fitted={"n_updates": int(self.n_updates_), "gmm_backend": str(self.gmm_backend_),
                    "device": str(self.device_), "engine": str(self.engine_),
                    "timings": {k: float(v) for k, v in self.timings_.items()}})
        return arrays, fields

    @classmethod
    def _from_fitted_state(cls, fields, arrays):
        """A fitted ODIM rebuilt from :meth:`_get_fitted_state`'s output, read from a file.

        ``arrays`` are finite where scoring needs it (the model file checks
        that); every field and shape is checked here and in
        :meth:`pyod_odim.scorer.FittedScorer.from_arrays`. Raises ValueError.
        """
        scorer = FittedScorer.from_arrays(fields, arrays)
        state = thresholds.stored_labels_and_cut(fields, arrays)
        params = {("engine" if k == "compile" else k): (tuple(v) if isinstance(v, list) else v)
                  for k, v in stored_field(fields, "params", dict).items()}
        try:
            estimator = cls(**{k: v for k, v in params.items() if k in inspect.signature(cls).parameters})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed parameters ({exc})") from None
        names = fields.get("feature_names")
        if names is not None and (not isinstance(names, list)
                                  or len(names) != scorer.n_features):
            raise ValueError("feature_names do not match the number of features")
        if names is not None:
            estimator.feature_names_in_ = np.array([str(n) for n in names], dtype=object)
        estimator.contamination = state["contamination"]
        estimator.scorer_, estimator.n_features_in_ = scorer, scorer.n_features
        estimator.decision_scores_, estimator.labels_ = state["scores"], state["labels"]
        estimator.threshold_ = estimator.score_threshold_ = state["threshold"]
        estimator._classes = int(fields.get("n_classes", 2))
        estimator._mu, estimator._sigma = state["score_moments"]
        estimator.likelihood_scores_ = arrays.get("likelihood_scores", state["scores"])
        estimator.history_ = {k: arrays.get(f"history/{k}")
                              for k in ("update", "distance", "raw_distance")}
        estimator.best_update_ = arrays.get("best_update")
        estimator.best_distance_ = arrays.get("best_distance")
        fitted = fields.get("fitted") if isinstance(fields.get("fitted"), dict) else {}
        estimator.n_updates_ = int(fitted.get("n_updates", 0))
        estimator.gmm_backend_ = str(fitted.get("gmm_backend", ""))
        estimator.device_ = str(fitted.get("device", "cpu"))
        estimator.engine_ = str(fitted.get("engine", fitted.get("compile", "")))
        estimator.likelihood_ = scorer.likelihood
        estimator.timings_ = dict(fitted.get("timings", {}))
        return estimator


def load(path, verify=False):
    """Read a detector written by :meth:`ODIM.save`; no code from the file runs.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default=False
        Also check the CRC-32 checksum of the arrays (:mod:`pyod_odim.model_file`).

    Returns
    -------
    estimator : ODIM
        Fitted: ``decision_function``, ``predict`` and ``predict_proba``
        give the same values as the saved estimator's. A detector saved
        with a thresholder as ``contamination`` comes back with a numeric
        one, and ``predict`` labels rows by the saved cut in score units.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a pyod-odim model file, a newer format version, or a truncated,
        corrupted or inconsistent file; the message names the problem.
    """
    fields, arrays = model_file.load(path, verify)
    try:
        return ODIM._from_fitted_state(fields, arrays)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


"""ODIM as a PyOD detector."""

import inspect
import numbers
import time

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils.validation import check_is_fitted

from . import gmm, model_file, network, thresholds
from ._device import cpu_fast_math, resolve_device
from ._threads import resolve_n_jobs, torch_threads
from ._validation import (FLOAT_DTYPES, check_samples, column_names, seed_from, stored_feature_names,
                          stored_field)
from .defaults import check_parameters, resolve_precision, score_stage, training_config
from .engines import make_engine
from .known_outliers import check_labels
from .neighbor_stage import CleanedNeighborStage
from .neighbors import NeighborScorer
from .parameter_bounds import check_parameter_range
from .sampling import fitting_rows, reference_rows
from .scaling import FeatureScaling
from .scorer import FittedScorer
from .training import train_members
from .training_rows import training_rows


class ODIM(BaseDetector):
    """Outlier detection via the inlier-memorization effect (ODIM).

    Deep generative models fit inliers before they fit outliers. ODIM trains
    an ensemble of importance-weighted autoencoders (IWAE) briefly, keeps
    each member's checkpoint whose losses split best into two Gaussian
    components, and scores a row by its mean negative IWAE bound there (and,
    up to 256 features, its distance to the rows ODIM trusts: ``score_stage``).

    Parameters
    ----------
    contamination : float in (0., 0.5] or thresholder, optional (default=0.1)
        The expected proportion of outliers, or a thresholder object such as
        PyThresh's ``IQR()`` that labels the training scores
        (:mod:`pyod_odim.thresholds`).

    n_estimators : int or None, optional (default=None)
        Number of independently initialized members. ``None``: 10 (the
        paper's), or 5 above 256 features.

    n_samples_iwae : int, optional (default=50)
        Importance samples ``K`` per row in the IWAE bound that scores rows
        (at every check, in ``decision_scores_`` and ``decision_function``).

    n_samples_train : int, "auto" or None, optional (default="auto")
        Importance samples per row in the training updates. ``"auto"``: 10,
        or 5 above 256 features; ``None``: ``n_samples_iwae`` (the paper's).

    n_samples_check : int or None, optional (default=None)
        Importance samples per row in the checks, at most ``n_samples_iwae``;
        ``None``: ``n_samples_train``.

    check_every : int, optional (default=10)
        Updates between two checks, ``N_u`` (paper: 10).

    patience : int or "auto", optional (default="auto")
        Checks without a new best distance before a member stops, ``N_pat``.
        ``"auto"``: 10 (the paper's), or 5 above 256 features.

    max_updates : int, optional (default=5000)
        Hard cap on updates; fits normally stop earlier by patience.

    min_updates : int or "auto", optional (default="auto")
        Warm-up: no checkpoint is kept, and no patience counted, before it.
        ``"auto"``: 100, or above 256 features 150 and at least 5 passes
        over the rows. 0 is the paper's.

    smoothing : int, optional (default=3)
        A check's criterion is the mean GMM-2 distance of the member's last
        ``smoothing`` checks; 1 is the paper's single-check rule.

    checkpoint : {"auto", "best", "last"}, optional (default="auto")
        The network each member keeps: "best" its check with the largest
        criterion (the paper's), "last" the state it stops in. "auto":
        "last" with the rectified decoder, else "best".

    batch_size : int, optional (default=128)
        Rows per update and member (paper: 128); smaller data uses all rows.

    lr : float or "auto", optional (default="auto")
        Adam learning rate. ``"auto"``: 1e-3 (the authors' code), or 2e-3
        with the rectified decoder.

    hidden_sizes : tuple of int or None, optional (default=None)
        Encoder widths, mirrored by the decoder. ``None``: (32, 16) up to
        100 features, else (128, 64).

    latent_dim : int or None, optional (default=None)
        Latent size; ``None``: 8 up to 100 features (4 for at most 7, 2 for
        at most 3), else 32.

    likelihood : {"auto", "gaussian", "rectified", "bernoulli"}, optional (default="auto")
        Decoder distribution of each feature: "gaussian" a normal with a
        sigmoid mean (the paper's); "rectified" ``max(0, normal)``, for
        non-negative features with many exact zeros such as post-ReLU
        embeddings; "bernoulli" for binary data. "auto": "rectified" on
        wide data with many values at their minimum
        (:func:`pyod_odim.defaults.likelihood_for_data`), else "gaussian".

    batch_norm : bool, optional (default=True)
        Batch-normalize every hidden layer, as the authors' networks do.

    distance : {"sigma", "variance"}, optional (default="sigma")
        Distance between the two mixture components: "sigma" the paper's
        squared 2-Wasserstein distance ``(mu1-mu2)^2 + (s1-s2)^2``;
        "variance" uses variances, as the authors' code does.

    selection_size : int, "auto" or None, optional (default="auto")
        Checks score at most this many rows (a fixed random subset).
        ``"auto"``: 8192, or 2048 above 256 features; ``None``: all rows
        (the paper's protocol).

    combination : {"mean", "standardized"}, optional (default="mean")
        How member scores merge: the mean of losses, or the mean after
        standardizing each member by its training scores.

    use_labels : bool, optional (default=False)
        Semi-supervised mode: ``fit(X, y)`` treats rows with ``y == 1`` as
        known outliers, pushed down by a CUBO term (paper section 5.2) and
        blended in by their neighbour ratio. When False, ``y`` is ignored.

    cubo_weight, cubo_order : float, optional (default=1.0, 2.0)
        Weight ``gamma`` of the CUBO term, and order ``u > 1`` of the chi
        upper bound.

    label_selection : {"rank", "gmm"}, optional (default="rank")
        Checkpoint criterion in semi-supervised mode: "rank" the known
        outliers' mean rank among the losses (the GMM distance breaks
        ties); "gmm" the unsupervised distance.

    neighbor_weight : float in [0, 1], optional (default=0.8)
        Semi-supervised mode: weight of the rank of the known outliers'
        neighbour ratio ``d_in / (d_in + d_out)`` against the rank of ODIM's
        score (:mod:`pyod_odim.neighbors`); 0 keeps ODIM's scores alone.

    n_neighbors : int, optional (default=5)
        Neighbours on each side of the neighbour ratio.

    inlier_quantile : float in (0, 1], optional (default=0.7)
        Unlabeled rows scoring at most this quantile are the reference inliers.

    score_stage : {"auto", "neighbors", "paper"}, optional (default="auto")
        "paper": the ensemble's score alone, as the paper describes.
        "neighbors": the higher of that and the distance to the 5th nearest
        row ODIM trusts (all but its 15 % highest scores), each in robust
        units (:mod:`pyod_odim.neighbor_stage`). "auto": "neighbors" up to
        256 features without known outliers, else "paper".

    engine : {"auto", "kernel", "inductor", "eager"}, optional (default="auto")
        What runs the network (:mod:`pyod_odim.engines`): "kernel" the
        fused C++ CPU kernels, "inductor" ``torch.compile`` (compiles for
        tens of seconds on a new shape), "eager" plain PyTorch ("none" is an
        alias). "auto": the kernels on the CPU when built, else eager.

    precision : {"float32", "auto", "bfloat16"}, optional (default="float32")
        The products' operands in training and in scoring (bfloat16 where
        the units are, float32 elsewhere); "auto": bfloat16 if wide
        (docs/parameters.md).

    device : str, torch.device or None, optional (default=None)
        Training device; ``None`` uses CUDA when available, else the CPU.

    n_jobs : int or None, optional (default=1)
        CPU threads of a fit or a scoring call; -1 uses every CPU. Results
        do not depend on it.

    random_state : int, numpy RandomState/Generator or None, optional (default=None)
        Seeds every random draw (never the global NumPy and torch RNGs).

    verbose : int, optional (default=0)
        0 silent; 1 a progress bar on a terminal; 2 a line per check.

    max_fit_rows : int or None, optional (default=None)
        Train on a uniform sample of at most this many rows; every row is
        still scored into ``decision_scores_``. ``None``: all rows.

    working_memory : float, optional (default=256)
        MiB of temporaries (scaled rows, member losses) that scoring may
        hold on the host; scores do not depend on it.

    scaling_fence : float or None, optional (default=1000)
        Min-max bounds leave out up to 1 % of extreme rows cut off by a gap
        of more than ``scaling_fence`` times the other values' span
        (:func:`pyod_odim.scaling.fenced_bounds`); ``None``: plain minimum
        and maximum. Values beyond the bounds add an overshoot cost.

    Attributes
    ----------
    decision_scores_ : numpy array of shape (n_samples,)
        The outlier scores of the training data (higher is more abnormal).

    threshold_ : float
        The ``contamination`` quantile of ``decision_scores_`` (for a
        thresholder, PyOD's value on its own scale).

    score_threshold_ : float
        The cut in score units that gives ``labels_``.

    labels_ : int, either 0 or 1
        Binary labels of the training data (1 = outlier).

    history_ : dict
        ``"update"`` (n_checks,), ``"distance"`` and ``"raw_distance"``
        (n_checks, n_estimators): each member's criterion at each check
        scored. The warm-up's checks start ``smoothing - 1`` checks before
        ``min_updates``: earlier ones could not change the fit and are
        skipped.

    best_update_, best_distance_ : numpy array of shape (n_estimators,)
        Update of each member's kept checkpoint, and its best criterion.

    n_updates_ : int
        Updates run before every member stopped.

    gmm_backend_, device_, engine_, likelihood_, precision_ : str
        What ran the GMM-2 fits ("cpp" or "numpy"), the device, the network
        ("kernel", "inductor" or "eager"), the decoder, the products'
        precision (training's and the scores').

    timings_ : dict
        Seconds spent in "train", "score" (checks), "gmm", "final_score".

    scorer_ : pyod_odim.scorer.FittedScorer
        Everything that scores a row: scaling, networks, draws, combination.

    likelihood_scores_ : numpy array of shape (n_samples,)
        The training scores before any neighbour blend.

    label_neighbors_ : pyod_odim.neighbors.NeighborScorer or None
        The known outliers' neighbour blend, if any.

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
                 n_samples_train="auto", n_samples_check=None, check_every=10, patience="auto",
                 max_updates=5000, min_updates="auto", smoothing=3, checkpoint="auto",
                 batch_size=128, lr="auto", hidden_sizes=None, latent_dim=None, likelihood="auto",
                 batch_norm=True, distance="sigma", selection_size="auto", combination="mean",
                 use_labels=False, cubo_weight=1.0, cubo_order=2.0, label_selection="rank",
                 neighbor_weight=0.8, n_neighbors=5, inlier_quantile=0.7, score_stage="auto",
                 engine="auto", precision="float32", device=None, n_jobs=1, random_state=None,
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
        self.score_stage = score_stage
        self.engine, self.precision = engine, precision
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
        X : numpy array or scipy.sparse matrix (CSR, CSC) of shape (n_samples, n_features)
            The input samples; sparse rows are made dense a chunk at a time.

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
        fit_rows, X_fit, labeled = fitting_rows(X, labeled, self.max_fit_rows, seed)
        n_unlabeled = X_fit.shape[0] - (0 if labeled is None else int(labeled.sum()))
        arch, config = training_config(self.get_params(), X_fit, n_unlabeled,
                                       resolve_n_jobs(self.n_jobs))
        device = resolve_device(self.device)
        scorer = FittedScorer(FeatureScaling.fit(X_fit, self.scaling_fence), arch,
                              config.likelihood, params=None, score_eps=None,
                              combination=self.combination)
        # The fitting rows that set what each feature costs a typical row.
        X_reference = X_fit[reference_rows(X_fit.shape[0], seed)]
        fitting = training_rows(X_fit, scorer, device, config.n_members, self.working_memory)
        del X_fit  # the scaled copy is all training needs
        engine = make_engine(self.engine, device, arch, config.likelihood, config.cubo_weight,
                             config.cubo_order, config.n_threads)
        engine.precision = resolve_precision(self.precision, engine.name, device, arch.n_features)
        scorer.precision = engine.precision
        with torch_threads(config.n_threads), cpu_fast_math(device):
            result = train_members(fitting, labeled, arch, config, engine, seed,
                                   self.label_selection, self.verbose)
            started = time.perf_counter()
            scores = self._score_training_rows(scorer, result, X, fitting, fit_rows, engine)
            staged = scores  # ODIM's scores, through the neighbour stage if asked for
            if score_stage(self.score_stage, X.shape[1],
                           labeled is not None and bool(labeled.any())) == "neighbors":
                staged = scorer.fit_stage(CleanedNeighborStage(n_jobs=config.n_threads), X,
                                          fit_rows, scores, labeled, seed, self.working_memory)
            scorer.fit_contribution_reference(X_reference, engine=self.engine,
                                              device=fitting.device, n_jobs=config.n_threads,
                                              working_memory=self.working_memory)
            final_seconds = time.perf_counter() - started
        self._keep_training_state(scorer, result, config.likelihood, device, engine, final_seconds)
        self.likelihood_scores_ = scores
        self.decision_scores_ = self._blend_known_outliers(X, fit_rows, staged, labeled,
                                                           config.n_threads)
        self._process_decision_scores()
        self.score_threshold_ = thresholds.score_threshold(
            self.contamination, self.threshold_, self.decision_scores_, self.labels_)
        return self

    # ------------------------------------------------------------ fit's steps
    def _validate(self, X, y):
        """Checked rows and known outliers (None unless ``use_labels``); sets the input's shape."""
        names = column_names(X)
        X = check_samples(X, min_samples=2, dtype=FLOAT_DTYPES, accept_sparse=True)
        check_parameters(self.get_params())
        labeled = check_labels(y, X.shape[0]) if self.use_labels else None
        self._set_n_classes(None if self.use_labels else y)
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X, labeled

    def _score_training_rows(self, scorer, result, X, fitting, fit_rows, engine):
        """Give ``scorer`` the kept networks; score every row of ``X`` with them."""
        scorer.params = network.params_to_numpy(result.params)
        scorer.score_eps = result.score_eps.cpu().numpy()
        # The checks' losses are those of the clamped training values, if any.
        return scorer.score_training_rows(
            X, fitting, fit_rows, None if fitting.detached else result.train_losses, engine,
            self.working_memory)

    def _keep_training_state(self, scorer, result, likelihood, device, engine, final_seconds):
        """Set the fitted attributes that describe the training run."""
        self.scorer_ = scorer
        self.history_ = {"update": result.check_updates, "distance": result.check_distances,
                         "raw_distance": result.check_raw}
        self.best_update_, self.best_distance_ = result.best_update, result.best_distance
        self.n_updates_, self.gmm_backend_ = result.n_updates, gmm.BACKEND
        self.device_, self.engine_, self.precision_ = str(device), engine.name, engine.precision
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

    def decision_function(self, X):
        """Predict raw anomaly scores of X; a row's score does not depend on the other rows.

        Parameters
        ----------
        X : numpy array or scipy.sparse matrix (CSR, CSC) of shape (n_samples, n_features)
            The input samples; sparse rows are made dense a chunk at a time.

        Returns
        -------
        anomaly_scores : numpy array of shape (n_samples,)
            The anomaly score of the input samples (higher is more abnormal).
        """
        check_is_fitted(self, ["scorer_", "decision_scores_"])
        X = check_samples(X, n_features=self.n_features_in_, dtype=FLOAT_DTYPES,
                          accept_sparse=True)
        return self._score_samples(X)

    def predict_proba(self, X, method="linear", return_confidence=False):
        """PyOD's ``predict_proba``, with outlier probability 1 for a ``+inf`` score.

        A row a damaged model cannot score gets ``+inf``
        (:meth:`pyod_odim.scorer.FittedScorer.combine`), which the
        ``MinMaxScaler`` behind PyOD's ``method="linear"`` refuses.

        Parameters
        ----------
        X, method, return_confidence
            As for :meth:`pyod.models.base.BaseDetector.predict_proba`.
        """
        if method != "linear":
            return super().predict_proba(X, method=method, return_confidence=return_confidence)
        check_is_fitted(self, ["decision_scores_", "threshold_", "labels_"])
        probs = thresholds.linear_outlier_probability(
            self.decision_scores_, self.decision_function(X), int(self._classes))
        return (probs, self.predict_confidence(X)) if return_confidence else probs

    def feature_contributions(self, X):
        """Each feature's share of each row's outlier score.

        A row's loss splits into one expected negative log-likelihood per
        feature; a contribution is that minus what the feature costs a
        typical fitting row (:meth:`pyod_odim.scorer.FittedScorer.contributions`).
        With the neighbour stage (``score_stage``), the stage's split: a
        row's contributions plus its rest sum to its score before any
        known-outlier blend. With that blend they explain the score under it.

        Parameters
        ----------
        X : numpy array or scipy.sparse matrix (CSR, CSC) of shape (n_samples, n_features)
            Rows to explain: training rows or new ones.

        Returns
        -------
        contributions : numpy array of shape (n_samples, n_features)
            Higher is more abnormal.
        """
        check_is_fitted(self, ["scorer_", "decision_scores_"])
        X = check_samples(X, n_features=self.n_features_in_, dtype=FLOAT_DTYPES,
                          accept_sparse=True)
        return self.scorer_.contributions(
            X, engine=self.engine, device=self.device,
            n_jobs=resolve_n_jobs(self.n_jobs), working_memory=self.working_memory,
        )[0]

    def explain_outlier(self, ind, columns=None, cutoffs=None, feature_names=None,
                        file_name=None, file_type=None, *, X=None, ax=None):
        """Chart a row's feature contributions with the training rows' cut-off bands.

        PyOD's ``COPOD.explain_outlier`` in the same shape, except that ODIM
        keeps no training rows: pass the rows as ``X`` (keyword-only) and
        ``ind`` indexes them, e.g. ``clf.explain_outlier(7, X=X_train)``.
        Bars above the highest band are red.

        Parameters
        ----------
        ind, columns, cutoffs, feature_names, file_name, file_type, X, ax
            As for :func:`pyod_odim.explain.explain_outlier`; ``X`` is required.

        Returns
        -------
        fig : matplotlib Figure
        """
        from .explain import explain_outlier

        return explain_outlier(self, ind, X=X, columns=columns, cutoffs=cutoffs,
                               feature_names=feature_names, file_name=file_name,
                               file_type=file_type, ax=ax)

    def save(self, path):
        """Save the fitted detector as arrays and JSON (:mod:`pyod_odim.model_file`, no pickle).

        :func:`pyod_odim.load` reads it, also in later versions of this package.

        Parameters
        ----------
        path : str or os.PathLike
            Written atomically.
        """
        model_file.save(path, *self._get_fitted_state())

    def to_torchscript(self, path, chunk_rows=None, precision="float64"):
        """Export the scorer as a TorchScript module that runs without this package.

        It maps raw rows to ``decision_function``'s scores; ``chunk_rows``
        (rows per chunk) does not change them; "float64" matches to a few
        1e-6 relative, "float32" to about 1e-5 (:mod:`pyod_odim.export`).
        Returns the ``torch.jit.ScriptModule``.
        """
        from .export import to_torchscript

        return to_torchscript(self, path, chunk_rows, precision)

    def to_onnx(self, path, precision="float64"):
        """Export the scorer as an ONNX graph (extra ``onnx``), as :meth:`to_torchscript` does."""
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
    def _get_fitted_state(self):
        """The fitted state as arrays by name and JSON-ready fields (a model file's content)."""
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
                    "precision": str(self.precision_),
                    "timings": {k: float(v) for k, v in self.timings_.items()}})
        return arrays, fields

    @classmethod
    def _from_fitted_state(cls, fields, arrays, extremes=None):
        """A fitted ODIM from :meth:`_get_fitted_state`'s output; ValueError if inconsistent.

        The model file checked the arrays' finiteness; ``extremes`` (their
        ``[min, max]`` by name, from the file's read) spares the range checks
        of :func:`~pyod_odim.parameter_bounds.check_parameter_range` a pass.
        """
        scorer = FittedScorer.from_arrays(fields, arrays)
        check_parameter_range(fields, scorer, extremes)
        state = thresholds.stored_labels_and_cut(fields, arrays)
        params = {("engine" if k == "compile" else k): (tuple(v) if isinstance(v, list) else v)
                  for k, v in stored_field(fields, "params", dict).items()}
        known = inspect.signature(cls).parameters  # once: a signature costs ~0.2 ms
        try:
            estimator = cls(**{k: v for k, v in params.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed parameters ({exc})") from None
        names = stored_feature_names(fields, scorer.n_features)
        if names is not None:
            estimator.feature_names_in_ = names
        estimator.contamination, estimator.scorer_ = state["contamination"], scorer
        estimator.n_features_in_ = scorer.n_features
        estimator.decision_scores_, estimator.labels_ = state["scores"], state["labels"]
        estimator.threshold_ = estimator.score_threshold_ = state["threshold"]
        estimator._classes = int(fields.get("n_classes", 2))
        estimator._mu, estimator._sigma = state["score_moments"]
        estimator.likelihood_scores_ = arrays.get("likelihood_scores", state["scores"])
        estimator.history_ = {k: arrays.get(f"history/{k}")
                              for k in ("update", "distance", "raw_distance")}
        estimator.best_update_, estimator.best_distance_ = (arrays.get("best_update"),
                                                           arrays.get("best_distance"))
        fitted = fields.get("fitted") if isinstance(fields.get("fitted"), dict) else {}
        estimator.n_updates_ = int(fitted.get("n_updates", 0))
        # Older files: "compile" for the engine, no precision (float32).
        for name, default in (("gmm_backend", ""), ("device", "cpu"), ("precision", "float32"),
                              ("engine", str(fitted.get("compile", "")))):
            setattr(estimator, name + "_", str(fitted.get(name, default)))
        estimator.likelihood_ = scorer.likelihood
        estimator.timings_ = dict(fitted.get("timings", {}))
        return estimator


"""ODIM as a PyOD detector."""

import numbers
import time
import warnings
from typing import NamedTuple

import numpy as np
import torch
from pyod.models.base import BaseDetector
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.validation import check_is_fitted

from . import gmm, network, thresholds
from ._device import cpu_fast_math, resolve_device
from ._threads import resolve_n_jobs, torch_threads
from ._validation import (
    FLOAT_DTYPES,
    check_choice,
    check_float,
    check_int,
    check_samples,
    seed_from,
)
from .chunking import chunk_slices, rows_per_chunk, scoring_row_bytes
from .engines import ENGINES, make_engine
from .labels import LABEL_SELECTIONS, check_labels, label_aware_criterion
from .neighbors import NeighborScorer
from .progress import make_progress
from .sampling import reference_rows, sample_rows
from .scaling import FeatureScaling
from .scorer import COMBINATIONS, FittedScorer
from .training import TrainingConfig, train_ensemble


WIDE_FEATURES = 256
"""int: above this many features the defaults switch to :data:`WIDE_DEFAULTS`.

Beyond it the decoder's output layer (a mean and a log-variance for each of
``d`` features) is most of every update's arithmetic, and every check and
the final scoring pass repeat it; on the shared embedding sets (512 to 1000
features) the wide defaults kept the training AUC at a fraction of the fit
time (docs/speed.md, "Embedding sets"). Tabular data up to 256 features
keeps :data:`NARROW_DEFAULTS`.
"""


class WidthDefaults(NamedTuple):
    """The defaults of the parameters that depend on the number of features.

    Each field is the value an ``"auto"`` (or, for ``n_estimators``,
    ``None``) parameter of :class:`ODIM` takes.
    """

    n_estimators: int
    n_samples_train: int
    patience: int
    selection_size: int
    min_updates: int
    min_epochs: float  # the warm-up also lasts this many passes over the rows


NARROW_DEFAULTS = WidthDefaults(n_estimators=10, n_samples_train=10, patience=10,
                                selection_size=8192, min_updates=100,
                                min_epochs=0)
"""WidthDefaults: up to :data:`WIDE_FEATURES` features: the paper's 10 members
and patience of 10 checks, 10 training samples, checks on up to 8192 rows,
no checkpoint before update 100 however many rows."""

WIDE_DEFAULTS = WidthDefaults(n_estimators=5, n_samples_train=5, patience=5,
                              selection_size=2048, min_updates=150,
                              min_epochs=5)
"""WidthDefaults: above :data:`WIDE_FEATURES` features: 5 members with 5
training samples (an update's cost is proportional to their product), 5
checks of patience, checks on up to 2048 rows (on 5,000-row embedding sets
the checks had cost more than the updates), and no checkpoint before update
150 or the end of the fifth pass over the rows. Over 3 seeds on the seven
shared embedding sets, patience and check subset together took 0.68x the
fit time for 0.0011 less mean training AUC
(docs/speed.md, "Patience and check subset"); the later warm-up then gave
+0.0042 for 1.18x the time (docs/accuracy.md, "A later warm-up and a
faster rate for sparse features"), and the five passes on the two
5,000-row sets +0.005 on cifar10_0 ("Keeping the state a member stops
in")."""


CHECKPOINTS = ("auto", "best", "last")
"""tuple of str: the values of ``checkpoint``."""

CHECKPOINT_FOR_LIKELIHOOD = {"gaussian": "best", "rectified": "last", "bernoulli": "best"}
"""dict: the checkpoint ``checkpoint="auto"`` keeps with each decoder likelihood.

With the rectified decoder (sparse image features) the training AUC did not
fall in 400 recorded updates: it kept rising on two of the five ResNet-feature
sets and stayed level on the others, so there the distance decides when a
member stops and the state it stops in is kept; elsewhere the paper's best
check is kept.
"""

LEARNING_RATES = {"gaussian": 1e-3, "rectified": 2e-3, "bernoulli": 1e-3}
"""dict: the Adam learning rate ``lr="auto"`` takes with each decoder likelihood.

The rectified decoder (sparse image features) trains at twice the
Gaussian's rate. On the five shared ResNet-feature sets (3 seeds, training
rows) 2e-3 raised the mean AUC by 0.009 for about as many updates; on the
two dense embedding sets it lowered it, so the Gaussian keeps 1e-3
(docs/accuracy.md, "A later warm-up and a faster rate for sparse
features").
"""

FLOOR_SHARE = 0.3
"""float: ``likelihood="auto"`` takes the rectified Gaussian on wide data from this share of values at their floor.

A value is at its floor when it equals its feature's minimum over the
fitting rows, which min-max scaling maps to exactly 0. Pooled post-ReLU
image features (ADBench's ResNet-18 sets, 512 features) are 47-81 % exact
zeros, their minimum; the share does not change under a per-feature affine
map, so a standardized copy (PyOD's benchmark protocol) is judged alike.
The dense embeddings (ViT outputs, sentence vectors) have at most 1.4 %.
"""


def likelihood_for_data(X):
    """The decoder ``likelihood="auto"`` chooses for the fitting rows ``X``.

    The rectified decoder is for wide, sparse, non-negative features
    (post-ReLU embeddings, counts). Narrow tabular data whose discrete
    features tie at their minimum is not that: on breastw, wbc and
    mammography (45-54 % of values at the floor, at most 9 features) the
    rectified decoder measured far worse than the Gaussian one
    (docs/accuracy.md, "A likelihood for sparse features"), so the rule
    also asks for more than :data:`WIDE_FEATURES` features.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.

    Returns
    -------
    likelihood : {"rectified", "gaussian"}
        ``"rectified"`` when ``X`` has more than :data:`WIDE_FEATURES`
        features and at least :data:`FLOOR_SHARE` of its values equal their
        feature's minimum, else ``"gaussian"``.
    """
    if X.size == 0 or X.shape[1] <= WIDE_FEATURES:
        return "gaussian"
    at_floor = np.count_nonzero(X == X.min(axis=0))
    return "rectified" if at_floor >= FLOOR_SHARE * X.size else "gaussian"


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def _int_or_width(value, width_default, name, low):
    """``width_default`` for ``"auto"``, else ``value`` checked as an integer >= ``low``."""
    return width_default if _is_auto(value) else check_int(value, name, low)


def defaults_for_width(n_features):
    """The defaults of the width-dependent parameters for ``n_features`` features.

    Parameters
    ----------
    n_features : int

    Returns
    -------
    WidthDefaults
        :data:`WIDE_DEFAULTS` above :data:`WIDE_FEATURES` features, else
        :data:`NARROW_DEFAULTS`.
    """
    return WIDE_DEFAULTS if n_features > WIDE_FEATURES else NARROW_DEFAULTS


def warm_up_updates(width, n_rows, batch_size):
    """The ``min_updates="auto"`` warm-up of a fit on ``n_rows`` unlabeled rows.

    Parameters
    ----------
    width : WidthDefaults
    n_rows : int
        Rows the IWAE term trains on.
    batch_size : int

    Returns
    -------
    int
        ``width.min_updates``, or the updates of ``width.min_epochs`` passes
        over the rows where that is more (large wide sets).
    """
    updates_per_epoch = max(1.0, n_rows / batch_size)
    return max(width.min_updates, int(np.ceil(width.min_epochs * updates_per_epoch)))


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
    each member's best checkpoint.

    All members train as one vectorized network (stacked weights and batched
    matmuls), on CUDA when available. The per-check mixture fit runs in a
    compiled C++ kernel (``pyod_odim.gmm.BACKEND``), with a NumPy fallback.

    Parameters
    ----------
    contamination : float in (0., 0.5] or thresholder, optional (default=0.1)
        The expected proportion of outliers; sets ``threshold_``. Or a
        thresholder object such as PyThresh's ``IQR()``
        (:mod:`pyod_odim.thresholds`): it labels the training scores, and
        ``score_threshold_`` is the cut in score units that gives those
        labels. ``predict`` then keeps PyOD's behaviour, the thresholder's
        ``predict`` on the new scores, which for a thresholder without a
        fitted ``thresh_`` (PyThresh's CLF, CLUST, ...) depends on the rows
        scored together; compare ``decision_function(X) > score_threshold_``
        for labels row by row, as :mod:`pyod_odim.dask`, the plots and a
        saved model (:meth:`save`) do.

    n_estimators : int or None, optional (default=None)
        Number of independently initialized members. ``None``: 10 (the
        paper's), or 5 above :data:`WIDE_FEATURES` features, where the
        decoder's ``2 d`` outputs make every update costly and 5 members
        measured as accurate (docs/speed.md, "Embedding sets").

    n_samples_iwae : int, optional (default=50)
        Importance samples ``K`` per row in the IWAE bound that scores rows:
        at every check, in ``decision_scores_`` and in
        ``decision_function`` (paper: 50).

    n_samples_train : int, "auto" or None, optional (default="auto")
        Importance samples per row in the training updates. ``"auto"``: 10,
        or 5 above :data:`WIDE_FEATURES` features; ``None`` uses
        ``n_samples_iwae`` as the paper does. An update's cost grows
        linearly with it; docs/accuracy.md ("Importance samples") and
        docs/speed.md ("Embedding sets") have the measured trade-offs.

    n_samples_check : int or None, optional (default=None)
        Importance samples per row when the checks score the selection set
        (the first draws of the fixed scoring draws); ``None`` uses
        ``n_samples_train``. At most ``n_samples_iwae``.

    check_every : int, optional (default=10)
        Updates between two checks, ``N_u`` (paper: 10).

    patience : int or "auto", optional (default="auto")
        Checks without a new best distance before a member stops,
        ``N_pat``. ``"auto"``: 10 (the paper's), or 5 above
        :data:`WIDE_FEATURES` features (:data:`WIDE_DEFAULTS`; docs/speed.md,
        "Embedding sets", has the measured choice).

    max_updates : int, optional (default=5000)
        Hard cap on updates; fits normally stop earlier by patience.

    min_updates : int or "auto", optional (default="auto")
        Warm-up: checks before this many updates are recorded in
        ``history_`` but cannot be kept as a checkpoint, and patience counts
        only after it. A barely trained network's losses can look bimodal
        for reasons unrelated to outliers (measured on mammography: 6 of 10
        members kept update 10 with inverted rankings). ``"auto"``: 100, or
        above :data:`WIDE_FEATURES` features (:data:`WIDE_DEFAULTS`) 150,
        where half the members had kept one of the first three checks
        allowed, and at least 5 passes over the rows on large sets
        (:func:`warm_up_updates`; 206 updates on 5,263 rows). 0 is the
        paper's procedure; docs/accuracy.md ("Checkpoint selection beyond
        the paper", "Ablations", "A later warm-up and a faster rate for
        sparse features", "Keeping the state a member stops in") has the
        measured choices.

    smoothing : int, optional (default=3)
        The selection criterion of a check is the mean GMM-2 distance of
        the member's last ``smoothing`` checks (fewer at the start); a
        checkpoint is kept, and patience reset, when that mean reaches a new
        maximum. 1 is the paper's single-check rule. Averaging keeps one
        noisy reading from choosing the checkpoint (docs/accuracy.md,
        "Checkpoint selection beyond the paper").

    checkpoint : {"auto", "best", "last"}, optional (default="auto")
        The network each member keeps. "best": its check with the largest
        (smoothed) GMM-2 distance, the paper's rule. "last": the state it
        stops in, ``patience`` checks after that best one (or at
        ``max_updates``); the distance then decides only how long a member
        trains. "auto": "last" with the rectified decoder, where the
        training AUC did not fall after the distance's peak in the
        recorded fits, else "best" (:data:`CHECKPOINT_FOR_LIKELIHOOD`;
        docs/accuracy.md, "Keeping the state a member stops in").

    batch_size : int, optional (default=128)
        Rows per update and member (paper: 128); smaller data uses all rows.

    lr : float or "auto", optional (default="auto")
        Adam learning rate. ``"auto"``: 1e-3 (the authors' code; the paper
        says 5e-4), or 2e-3 with the rectified decoder
        (:data:`LEARNING_RATES`). The measured comparisons are in
        docs/accuracy.md ("Ablations", "A later warm-up and a faster rate
        for sparse features").

    hidden_sizes : tuple of int or None, optional (default=None)
        Encoder widths, mirrored by the decoder. ``None`` chooses from the
        number of features: (32, 16) up to 100 features, else (128, 64). The
        authors use (512, 256) above 500 features; that measured several
        times slower on the embedding sets for no consistent gain
        (``python benchmarks/bench_speed.py --sections wide``; docs/speed.md
        has the default network's embedding-set fits).

    latent_dim : int or None, optional (default=None)
        Latent size; ``None`` gives 8 up to 100 features (4 for at most 7, 2
        for at most 3), else 32.

    likelihood : {"auto", "gaussian", "rectified", "bernoulli"}, optional (default="auto")
        Decoder distribution of each feature. "gaussian": a normal with a
        sigmoid mean, the paper's. "rectified": ``max(0, normal)``, a point
        mass at 0 (the training minimum) plus a normal density above it,
        for non-negative features with many exact zeros, such as pooled
        post-ReLU image embeddings. "bernoulli" for binary data. "auto":
        "rectified" for more than :data:`WIDE_FEATURES` features of which
        at least :data:`FLOOR_SHARE` of the fitting rows' values sit at
        their feature's minimum (exact zeros of a non-negative feature, or
        their standardized image), else "gaussian" (``likelihood_`` tells
        which); docs/accuracy.md ("A
        likelihood for sparse features") has the measurements.

    batch_norm : bool, optional (default=True)
        Batch-normalize every hidden layer (no affine part), as the authors'
        networks do; scoring uses the running statistics. It measured
        +0.002 mean training AUC over the 17 shared sets at about 2.5x the
        fit time (docs/accuracy.md, "Ablations"); False is the faster
        choice.

    distance : {"sigma", "variance"}, optional (default="sigma")
        Distance between the two mixture components: "sigma" is the paper's
        squared 2-Wasserstein distance ``(mu1-mu2)^2 + (s1-s2)^2``;
        "variance" uses variances in place of standard deviations, as the
        authors' published code does.

    selection_size : int, "auto" or None, optional (default="auto")
        Checks score at most this many rows (a fixed random subset); every
        row is scored once at the end with each member's best checkpoint.
        ``"auto"``: 8192, or 2048 above :data:`WIDE_FEATURES` features,
        where scoring a row costs most. ``None`` always uses all rows (the
        paper's protocol).

    combination : {"mean", "standardized"}, optional (default="mean")
        How member scores merge: the plain mean of losses, or the mean after
        standardizing each member by its training scores.

    use_labels : bool, optional (default=False)
        Semi-supervised mode. When True, ``fit(X, y)`` treats rows with
        ``y == 1`` as known outliers: they are excluded from the IWAE term and
        their likelihood is pushed down by a CUBO term (paper section 5.2),
        and the scores blend ODIM's likelihood with the known outliers'
        neighbour ratio (``neighbor_weight``). When False, ``y`` is ignored
        as in every unsupervised PyOD detector.

    cubo_weight : float, optional (default=1.0)
        Weight ``gamma`` of the CUBO term in semi-supervised mode.

    cubo_order : float, optional (default=2.0)
        Order ``u > 1`` of the chi upper bound.

    label_selection : {"rank", "gmm"}, optional (default="rank")
        Checkpoint criterion in semi-supervised mode: "rank" maximizes the
        mean rank of the known outliers among the selection set's losses,
        with the GMM distance breaking ties; "gmm" is the unsupervised GMM
        distance. "rank" measured better than "gmm" in an earlier version
        of the semi-supervised mode (docs/semisupervised.md, "Open": that
        comparison was not repeated since).

    neighbor_weight : float in [0, 1], optional (default=0.8)
        Semi-supervised mode only: share of the known outliers' neighbour
        ratio in the scores (:mod:`pyod_odim.neighbors`). The unlabeled rows
        that ODIM scores lowest (up to ``inlier_quantile``) are the
        reference inliers; a row's ratio ``d_in / (d_in + d_out)`` compares
        its mean distances to its ``n_neighbors`` nearest reference inliers
        and known outliers; the score is ``(1 - neighbor_weight)`` times the
        rank of ODIM's score plus ``neighbor_weight`` times the rank of the
        ratio (ranks among the training rows, in [0, 1]). 0 keeps ODIM's
        likelihood scores alone. docs/semisupervised.md ("Going past
        XGBOD: the neighbour blend") has the measured choice.

    n_neighbors : int, optional (default=5)
        Neighbours on each side of the neighbour ratio.

    inlier_quantile : float in (0, 1], optional (default=0.7)
        Unlabeled rows whose ODIM score is at most this quantile of the
        unlabeled rows' scores are the reference inliers of the neighbour
        ratio.

    compile : {"auto", "kernel", "inductor", "eager", "none"}, optional (default="auto")
        How the network's arithmetic runs (:mod:`pyod_odim.engines`):
        "kernel" the package's fused C++ CPU kernels, "inductor" PyTorch
        compiled by ``torch.compile`` (tens of seconds of compilation the
        first time a shape is seen, cached on disk afterwards), "eager" (or
        "none") plain PyTorch. "auto" runs the kernels on the CPU when they
        are built, else eager PyTorch. All give the same scores within
        float32 rounding.

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
        with ``random_state`` (:mod:`pyod_odim.sampling`); the scaler, the
        network and ``member_mean_``/``member_std_`` come from the sample,
        and every row of ``X`` is still scored into ``decision_scores_``.
        ``None``, or a cap of at least ``n_samples``, trains on all rows.
        A fit needs a few hundred minibatch updates whatever the number of
        rows, so large data trains as well on a sample (docs/scale.md has
        the measured trade-off).

    working_memory : float, optional (default=256)
        MiB of temporaries (scaled rows, member losses) that scoring may
        hold on the host: ``decision_function`` and the final scoring pass
        of ``fit`` score rows in chunks that fit it, and ``fit`` scales its
        training rows into their float32 tensor chunk by chunk. Scores do
        not depend on it. The input, the float32 training rows and the
        outputs are not counted; with ``selection_size=None`` the checks
        also keep every training row's member losses.

    scaling_fence : float or None, optional (default=1000)
        Features are min-max scaled with bounds taken from the fitting rows;
        a feature's highest (or lowest) values do not set its bound when a
        gap more than ``scaling_fence`` times the span of all values below
        (above) it separates them from the rest, up to 1 % of the rows
        (:func:`pyod_odim.scaling.fenced_bounds`), so a few extreme rows (a
        sentinel 9.99e12, a unit mistake) cannot squeeze every other row
        into a sliver. On data without such gaps the bounds are the plain
        minimum and maximum.
        ``None`` always uses the minimum and maximum (the paper's scaling).
        Whatever the bounds, the network sees values clipped to ten
        bound-widths beyond them ([0, 1] for the Bernoulli likelihood), and a
        value beyond that adds ``0.5 * exp(6) * excess**2`` to the score
        (:mod:`pyod_odim.scaling`): every finite row gets a finite score
        that grows with its distance.

    Attributes
    ----------
    decision_scores_ : numpy array of shape (n_samples,)
        The outlier scores of the training data (higher is more abnormal).

    threshold_ : float
        The ``contamination`` quantile of ``decision_scores_``; for a
        thresholder, what PyOD sets: the thresholder's ``thresh_``, a cut on
        its own normalized scale, or, when it has none, the share of
        training rows it labelled 1.

    score_threshold_ : float
        The cut in score units: training rows scoring above it are those
        labelled 1. ``threshold_`` for a numeric ``contamination``; for a
        thresholder, the midpoint between the highest training score
        labelled 0 and the lowest labelled 1
        (:func:`pyod_odim.thresholds.score_cut`, which also says what
        happens when every row has one label, and warns when no cut
        reproduces the labels).

    labels_ : int, either 0 or 1
        Binary labels of the training data (1 = outlier).

    history_ : dict
        ``"update"`` (n_checks,) update count at each check;
        ``"distance"`` (n_checks, n_estimators) each member's selection
        criterion there (the mean of its last ``smoothing`` GMM-2
        distances; NaN after the member stopped); ``"raw_distance"`` the
        same before smoothing.

    best_update_ : numpy array of shape (n_estimators,)
        Update of each member's kept checkpoint (with ``checkpoint="last"``
        the update it stopped at).

    best_distance_ : numpy array of shape (n_estimators,)
        Best selection criterion of each member (at its best check, which
        is also the kept one unless ``checkpoint="last"``).

    n_updates_ : int
        Updates run before every member stopped.

    gmm_backend_ : str
        "cpp" or "numpy": which GMM-2 implementation ran.

    device_ : str
        Device the fit ran on.

    compile_ : str
        "kernel", "inductor" or "eager": how the network ran.

    likelihood_ : str
        The decoder distribution the fit used: ``likelihood``, or what
        "auto" chose (:func:`likelihood_for_data`).

    timings_ : dict
        Seconds spent in "train", "score" (checks), "gmm", "final_score".

    likelihood_scores_ : numpy array of shape (n_samples,)
        ODIM's own training scores (the combined member losses), before any
        blend with the known outliers' neighbour ratio; equal to
        ``decision_scores_`` unless ``label_neighbors_`` is set.

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

    def __init__(
        self,
        contamination=0.1,
        n_estimators=None,
        n_samples_iwae=50,
        n_samples_train="auto",
        n_samples_check=None,
        check_every=10,
        patience="auto",
        max_updates=5000,
        min_updates="auto",
        smoothing=3,
        checkpoint="auto",
        batch_size=128,
        lr="auto",
        hidden_sizes=None,
        latent_dim=None,
        likelihood="auto",
        batch_norm=True,
        distance="sigma",
        selection_size="auto",
        combination="mean",
        use_labels=False,
        cubo_weight=1.0,
        cubo_order=2.0,
        label_selection="rank",
        neighbor_weight=0.8,
        n_neighbors=5,
        inlier_quantile=0.7,
        compile="auto",
        device=None,
        n_jobs=1,
        random_state=None,
        verbose=0,
        max_fit_rows=None,
        working_memory=256,
        scaling_fence=1000.0,
    ):
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
        self.compile = compile
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.max_fit_rows = max_fit_rows
        self.working_memory = working_memory
        self.scaling_fence = scaling_fence

    # ------------------------------------------------------------------
    def _check_parameters(self, n_features):
        """Validate every hyper-parameter; return the training config."""
        thresholds.check_contamination(self.contamination)
        if not _is_auto(self.lr):
            check_float(self.lr, "lr", 0.0)
        check_choice(self.likelihood, "likelihood", ("auto",) + network.LIKELIHOODS)
        check_choice(self.distance, "distance", gmm.DISTANCES)
        check_choice(self.combination, "combination", COMBINATIONS)
        check_choice(self.checkpoint, "checkpoint", CHECKPOINTS)
        check_choice(self.compile, "compile", ENGINES)
        check_choice(self.label_selection, "label_selection", LABEL_SELECTIONS)
        check_float(self.cubo_weight, "cubo_weight", 0.0, low_open=False)
        check_float(self.cubo_order, "cubo_order", 1.0)
        check_float(self.neighbor_weight, "neighbor_weight", 0.0, 1.0, low_open=False)
        check_int(self.n_neighbors, "n_neighbors", 1)
        check_float(self.inlier_quantile, "inlier_quantile", 0.0, 1.0)
        check_int(self.verbose, "verbose", 0)
        for name in ("batch_norm", "use_labels"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.max_fit_rows is not None:
            check_int(self.max_fit_rows, "max_fit_rows", 2)
        check_float(self.working_memory, "working_memory", 0.0)
        if self.scaling_fence is not None:
            check_float(self.scaling_fence, "scaling_fence", 0.0, low_open=False)
        n_score = check_int(self.n_samples_iwae, "n_samples_iwae", 1)
        width = defaults_for_width(n_features)
        n_members = width.n_estimators
        n_train = n_score
        if self.n_samples_train is not None:
            n_train = _int_or_width(self.n_samples_train, width.n_samples_train,
                                    "n_samples_train", 1)
        if self.n_estimators is not None:
            n_members = check_int(self.n_estimators, "n_estimators", 1)
        n_check = n_train
        if self.n_samples_check is not None:
            n_check = check_int(self.n_samples_check, "n_samples_check", 1)
        # Checks use the first draws of the fixed scoring draws.
        n_check = min(n_check, n_score)
        patience = _int_or_width(self.patience, width.patience, "patience", 1)
        min_updates = _int_or_width(self.min_updates, width.min_updates, "min_updates", 0)
        selection_size = self.selection_size
        if selection_size is not None:
            selection_size = _int_or_width(selection_size, width.selection_size,
                                           "selection_size", 2)
        hidden, latent = network.default_architecture(n_features)
        if self.hidden_sizes is not None:
            sizes = tuple(self.hidden_sizes)
            if not sizes:
                raise ValueError("hidden_sizes must hold at least one width")
            hidden = tuple(check_int(w, "hidden_sizes entry", 1) for w in sizes)
        if self.latent_dim is not None:
            latent = check_int(self.latent_dim, "latent_dim", 1)
        arch = network.Architecture(n_features, hidden, latent)
        config = TrainingConfig(
            n_members=n_members,
            n_samples=n_score,
            batch_size=check_int(self.batch_size, "batch_size", 1),
            # "auto" waits for the likelihood, chosen from the data in fit.
            lr=LEARNING_RATES["gaussian"] if _is_auto(self.lr) else float(self.lr),
            check_every=check_int(self.check_every, "check_every", 1),
            patience=patience,
            max_updates=check_int(self.max_updates, "max_updates", 1),
            min_updates=min_updates,
            smoothing=check_int(self.smoothing, "smoothing", 1),
            selection_size=selection_size,
            distance=self.distance,
            # Only Bernoulli sizes the decoder differently ("auto" never
            # chooses it).
            bernoulli=self.likelihood == "bernoulli",
            batch_norm=bool(self.batch_norm),
            cubo_weight=float(self.cubo_weight),
            cubo_order=float(self.cubo_order),
            n_samples_train=n_train,
            n_samples_check=n_check,
            n_threads=resolve_n_jobs(self.n_jobs),
        )
        return arch, config

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
        names = _column_names(X)
        X = check_samples(X, min_samples=2, dtype=FLOAT_DTYPES)
        arch, config = self._check_parameters(X.shape[1])
        labeled = None
        if self.use_labels:
            labeled = check_labels(y, X.shape[0])
            y_eval = None
        else:
            y_eval = y
        self._set_n_classes(y_eval)
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

        device = resolve_device(self.device)
        n_threads = config.n_threads
        seed = seed_from(self.random_state)
        # The fitting rows: all of X, or a uniform sample of max_fit_rows.
        fit_rows = sample_rows(X.shape[0], self.max_fit_rows, seed)
        X_fit = X if fit_rows is None else X[fit_rows]
        likelihood = self.likelihood
        if likelihood == "auto":
            likelihood = likelihood_for_data(X_fit)
        if _is_auto(self.lr):
            config = config._replace(lr=LEARNING_RATES[likelihood])
        # The fitting rows that set what each feature costs a typical row.
        X_reference = X_fit[reference_rows(X_fit.shape[0], seed)]
        if labeled is not None and fit_rows is not None:
            labeled = labeled[fit_rows]
        if _is_auto(self.min_updates):
            n_unlabeled = X_fit.shape[0] - (0 if labeled is None else int(labeled.sum()))
            config = config._replace(min_updates=warm_up_updates(
                defaults_for_width(X.shape[1]), n_unlabeled, config.batch_size))
        checkpoint = self.checkpoint
        if checkpoint == "auto":
            checkpoint = CHECKPOINT_FOR_LIKELIHOOD[likelihood]
        config = config._replace(keep_last=checkpoint == "last")
        scorer = FittedScorer(
            FeatureScaling.fit(X_fit, self.scaling_fence), arch, likelihood,
            params=None, score_eps=None,
            combination=self.combination,
        )
        X_scaled, fit_costs = _scaled_tensor(
            scorer, X_fit, device, config.n_members, self.working_memory
        )
        del X_fit  # the scaled copy is all training needs
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        engine = self._engine(device, arch, likelihood, n_threads)

        labeled_index = None
        criterion = None
        if labeled is not None and labeled.any():
            labeled_index = torch.as_tensor(np.flatnonzero(labeled), device=device)
            if self.label_selection == "rank":
                criterion = label_aware_criterion(labeled, config.distance, n_threads)

        progress = make_progress(self.verbose, config.max_updates)
        try:
            with torch_threads(n_threads), cpu_fast_math(device):
                # Training and the checks see values detached by the fence at the
                # bounds (the scoring box would let them dominate every loss).
                detached = bool(fit_costs.any()) or bool(
                    ((X_scaled < 0.0) | (X_scaled > 1.0)).any().item()
                )
                result = train_ensemble(
                    X_scaled.clamp(0.0, 1.0) if detached else X_scaled,
                    arch,
                    config,
                    generator,
                    engine,
                    labeled_index=labeled_index,
                    selection_criterion=criterion,
                    on_check=progress.update,
                )
                t0 = time.perf_counter()
                scorer.params = network.params_to_numpy(result.params)
                scorer.score_eps = result.score_eps.cpu().numpy()
                decision_scores = scorer.score_training_rows(
                    X, X_scaled, fit_costs, fit_rows,
                    None if detached else result.train_losses, engine,
                    self.working_memory,
                )
                scorer.fit_contribution_reference(
                    X_reference, compile=self.compile, device=device, n_jobs=n_threads,
                    working_memory=self.working_memory,
                )
                final_seconds = time.perf_counter() - t0
        finally:
            progress.close()

        self.scorer_ = scorer
        self.history_ = {
            "update": result.check_updates,
            "distance": result.check_distances,
            "raw_distance": result.check_raw,
        }
        self.best_update_ = result.best_update
        self.best_distance_ = result.best_distance
        self.n_updates_ = result.n_updates
        self.gmm_backend_ = gmm.BACKEND
        self.device_ = str(device)
        self.compile_ = engine.name
        self.likelihood_ = likelihood
        self.timings_ = dict(result.timings, final_score=final_seconds)
        self.likelihood_scores_ = decision_scores
        if labeled is not None and labeled.any() and self.neighbor_weight > 0:
            neighbors = NeighborScorer(
                float(self.neighbor_weight), int(self.n_neighbors),
                float(self.inlier_quantile), n_threads,
            )
            decision_scores = scorer.fit_neighbors(
                neighbors, X, fit_rows, decision_scores, labeled, self.working_memory
            )
        self.decision_scores_ = decision_scores
        self._process_decision_scores()
        if isinstance(self.contamination, numbers.Real):
            self.score_threshold_ = float(self.threshold_)
            scorer.contamination = float(self.contamination)
        else:
            # PyOD's threshold_ is on the thresholder's own scale: derive the
            # cut in score units that gives the thresholder's training labels.
            self.score_threshold_, n_differ = thresholds.score_cut(
                self.decision_scores_, self.labels_
            )
            if n_differ:
                warnings.warn(
                    f"{type(self.contamination).__name__}'s labels are not a cut on the "
                    f"scores: score_threshold_={self.score_threshold_:.6g} labels "
                    f"{n_differ} of {len(self.labels_)} training rows differently",
                    UserWarning, stacklevel=2,
                )
        scorer.threshold = self.score_threshold_
        return self

    def _engine(self, device, arch, likelihood, n_threads):
        return make_engine(
            self.compile, device, arch, likelihood,
            float(self.cubo_weight), float(self.cubo_order), n_threads,
        )

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

    def predict_proba(self, X, method="linear", return_confidence=False):
        """Predict the probability of a sample being outlier (PyOD's method).

        As :meth:`pyod.models.base.BaseDetector.predict_proba`, except that
        a row scored ``+inf`` (a row a damaged model cannot score,
        :meth:`pyod_odim.scorer.FittedScorer.combine`) has outlier
        probability 1 with ``method="linear"`` too, where scikit-learn's
        ``MinMaxScaler`` would refuse the infinite score.

        Parameters
        ----------
        X : numpy array of shape (n_samples, n_features)
            The input samples.

        method : str, optional (default='linear')
            'linear' (min-max scaling by the training scores) or 'unify'.

        return_confidence : boolean, optional(default=False)
            If True, also return the confidence of prediction.

        Returns
        -------
        outlier_probability : numpy array of shape (n_samples, n_classes)
            [probability of normal, probability of outlier] per row.
        """
        if method != "linear":
            return super().predict_proba(X, method=method, return_confidence=return_confidence)
        check_is_fitted(self, ["decision_scores_", "threshold_", "labels_"])
        scores = self.decision_function(X)
        finite = np.isfinite(scores)
        outlier = np.ones(scores.shape[0])
        if finite.any():
            scaler = MinMaxScaler().fit(self.decision_scores_.reshape(-1, 1))
            outlier[finite] = scaler.transform(scores[finite].reshape(-1, 1)).ravel().clip(0, 1)
        probs = np.zeros((scores.shape[0], int(self._classes)))
        probs[:, 1] = outlier
        probs[:, 0] = 1 - outlier
        if return_confidence:
            return probs, self.predict_confidence(X)
        return probs

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
            X, compile=self.compile, device=self.device,
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
        from .model_file import save

        save(self, path)

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
        return self.scorer_.score(
            X, compile=self.compile, device=self.device,
            n_jobs=resolve_n_jobs(self.n_jobs), working_memory=self.working_memory,
        )

    # Fitted state kept under its earlier names; the scorer holds it.
    @property
    def architecture_(self):
        """pyod_odim.network.Architecture: the network's widths."""
        return self.scorer_.architecture

    @property
    def network_state_(self):
        """dict of str to list of ndarray: each member's chosen parameters."""
        return self.scorer_.params

    @property
    def score_eps_(self):
        """ndarray of shape (M, K, 1, L): the fixed importance draws."""
        return self.scorer_.score_eps

    @property
    def member_mean_(self):
        """ndarray of shape (M,): each member's mean loss over the fitting rows."""
        return self.scorer_.member_mean

    @property
    def member_std_(self):
        """ndarray of shape (M,): each member's loss standard deviation there."""
        return self.scorer_.member_std

    @property
    def scaler_(self):
        """pyod_odim.scaling.FeatureScaling: the fitted feature scaling."""
        return self.scorer_.scaling

    @property
    def label_neighbors_(self):
        """pyod_odim.neighbors.NeighborScorer or None: the known-outlier blend."""
        return self.scorer_.neighbors

    def _scale(self, X):
        return self.scorer_.scale(X)


def _scaled_tensor(scorer, X, device, n_members, working_memory):
    """The scaled, clipped rows as one float32 tensor on ``device``, and their overshoot costs.

    Filled chunk by chunk, so a float64 input never has a float64 scaled
    copy of all its rows beside it.
    """
    chunk = rows_per_chunk(working_memory, scoring_row_bytes(X.shape[1], n_members, X.dtype.itemsize))
    out = torch.empty(X.shape, dtype=torch.float32, device=device)
    costs = np.empty(X.shape[0])
    for rows in chunk_slices(X.shape[0], chunk):
        x, costs[rows] = scorer.scale_with_cost(X[rows])
        out[rows] = torch.as_tensor(x, dtype=torch.float32, device=device)
    return out, costs


def _column_names(X):
    """A DataFrame's column names as strings (scikit-learn's ``feature_names_in_``), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "dtypes"):
        return None
    return np.asarray([str(c) for c in columns], dtype=object)

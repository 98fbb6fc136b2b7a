"""The values ODIM's ``"auto"`` (and ``None``) parameters take.

:func:`training_config` settles every one of them once, when the fitting
rows are known, into the :class:`~pyod_odim.network.Architecture` and the
:class:`~pyod_odim.training.TrainingConfig` of a fit. Some depend on the
number of features (:data:`NARROW_DEFAULTS`, :data:`WIDE_DEFAULTS`), some on
the decoder's likelihood (:data:`LEARNING_RATES`,
:data:`CHECKPOINT_FOR_LIKELIHOOD`), which ``likelihood="auto"`` chooses from
the rows (:func:`likelihood_for_data`). docs/decisions.md holds the
measurements behind each value.
"""

import warnings
from typing import NamedTuple

import numpy as np

from . import gmm, kernels, network, thresholds
from ._validation import check_choice, check_float, check_int
from .engines import ENGINES, bf16_units
from .known_outliers import LABEL_SELECTIONS
from .neighbor_stage import SCORE_STAGES
from .scorer import COMBINATIONS
from .sparse import count_at_minimum
from .training import TrainingConfig

WIDE_FEATURES = 256
"""int: above this many features the defaults switch to :data:`WIDE_DEFAULTS`.

Beyond it the decoder's output layer (a mean and a log-variance for each of
``d`` features) is most of every update's arithmetic.
"""


class WidthDefaults(NamedTuple):
    """The defaults of the parameters that depend on the number of features.

    Each field is the value an ``"auto"`` (or, for ``n_estimators``,
    ``None``) parameter of :class:`~pyod_odim.ODIM` takes.
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
checks of patience, checks on up to 2048 rows, and no checkpoint before
update 150 or the end of the fifth pass over the rows."""

PRECISIONS = ("auto", "float32", "bfloat16")
"""tuple of str: the values of ``precision``."""

CHECKPOINTS = ("auto", "best", "last")
"""tuple of str: the values of ``checkpoint``."""

CHECKPOINT_FOR_LIKELIHOOD = {"gaussian": "best", "rectified": "last", "bernoulli": "best"}
"""dict: the checkpoint ``checkpoint="auto"`` keeps with each decoder likelihood.

With the rectified decoder (sparse image features) the distance decides when
a member stops and the state it stops in is kept; elsewhere the paper's best
check is kept.
"""

LEARNING_RATES = {"gaussian": 1e-3, "rectified": 2e-3, "bernoulli": 1e-3}
"""dict: the Adam learning rate ``lr="auto"`` takes with each decoder likelihood.

The rectified decoder (sparse image features) trains at twice the
Gaussian's rate.
"""

FLOOR_SHARE = 0.3
"""float: ``likelihood="auto"`` takes the rectified Gaussian on wide data from this share of values at their floor.

A value is at its floor when it equals its feature's minimum over the
fitting rows, which min-max scaling maps to exactly 0. The share does not
change under a per-feature affine map, so a standardized copy of the data
is judged alike.
"""


def likelihood_for_data(X):
    """The decoder ``likelihood="auto"`` chooses for the fitting rows ``X``.

    The rectified decoder is for wide, sparse, non-negative features
    (post-ReLU embeddings, counts). Narrow tabular data whose discrete
    features tie at their minimum is not that, so the rule also asks for
    more than :data:`WIDE_FEATURES` features.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Finite values (a sparse matrix's implicit zeros included).

    Returns
    -------
    likelihood : {"rectified", "gaussian"}
        ``"rectified"`` when ``X`` has more than :data:`WIDE_FEATURES`
        features and at least :data:`FLOOR_SHARE` of its values equal their
        feature's minimum, else ``"gaussian"``.
    """
    if X.size == 0 or X.shape[1] <= WIDE_FEATURES:
        return "gaussian"
    at_floor = count_at_minimum(X)
    return "rectified" if at_floor >= FLOOR_SHARE * X.size else "gaussian"


def _is_auto(value):
    """Whether a parameter's value is the string ``"auto"``."""
    return isinstance(value, str) and value == "auto"


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


def _int_or_auto(value, auto_value, name, low):
    """``auto_value`` for ``"auto"``, else ``value`` checked as an integer >= ``low``."""
    return auto_value if _is_auto(value) else check_int(value, name, low)


def architecture(n_features, hidden_sizes=None, latent_dim=None):
    """The network's widths: the given ones, checked, or the defaults for ``n_features``."""
    hidden, latent = network.default_architecture(n_features)
    if hidden_sizes is not None:
        sizes = tuple(hidden_sizes)
        if not sizes:
            raise ValueError("hidden_sizes must hold at least one width")
        hidden = tuple(check_int(w, "hidden_sizes entry", 1) for w in sizes)
    if latent_dim is not None:
        latent = check_int(latent_dim, "latent_dim", 1)
    return network.Architecture(n_features, hidden, latent)


def score_stage(value, n_features, known_outliers=False):
    """``"neighbors"`` or ``"paper"``; "auto": the neighbour stage up to :data:`WIDE_FEATURES`.

    Above it, on image and text embeddings, ODIM's likelihood score leads
    alone; with known outliers in use, their neighbour blend
    (:mod:`pyod_odim.neighbors`) already looks at local structure, and the
    stage under it lowered the AUC on the unlabeled rows at small labeled
    shares (docs/decisions.md, "Tabular data: a scoring stage beyond the
    early checkpoint").

    Parameters
    ----------
    value : {"auto", "neighbors", "paper"}
    n_features : int
    known_outliers : bool, optional (default=False)
        Whether the fit uses known outliers (``use_labels`` with at least
        one labeled row).
    """
    if value == "auto":
        return "neighbors" if n_features <= WIDE_FEATURES and not known_outliers else "paper"
    return value


def check_parameters(params):
    """Validate the parameters of :class:`~pyod_odim.ODIM` that need no data.

    :func:`training_config` checks the others once the rows are known.

    Parameters
    ----------
    params : dict
        ``ODIM.get_params()``.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter.
    """
    thresholds.check_contamination(params["contamination"])
    if not _is_auto(params["lr"]):
        check_float(params["lr"], "lr", 0.0)
    check_choice(params["likelihood"], "likelihood", ("auto",) + network.LIKELIHOODS)
    check_choice(params["distance"], "distance", gmm.DISTANCES)
    check_choice(params["combination"], "combination", COMBINATIONS)
    check_choice(params["checkpoint"], "checkpoint", CHECKPOINTS)
    check_choice(params["engine"], "engine", ENGINES)
    check_choice(params["precision"], "precision", PRECISIONS)
    check_choice(params["label_selection"], "label_selection", LABEL_SELECTIONS)
    check_choice(params["score_stage"], "score_stage", SCORE_STAGES)
    check_float(params["cubo_weight"], "cubo_weight", 0.0, low_open=False)
    check_float(params["cubo_order"], "cubo_order", 1.0)
    check_float(params["neighbor_weight"], "neighbor_weight", 0.0, 1.0, low_open=False)
    check_int(params["n_neighbors"], "n_neighbors", 1)
    check_float(params["inlier_quantile"], "inlier_quantile", 0.0, 1.0)
    check_int(params["verbose"], "verbose", 0)
    for name in ("batch_norm", "use_labels"):
        if not isinstance(params[name], (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {params[name]!r}")
    if params["max_fit_rows"] is not None:
        check_int(params["max_fit_rows"], "max_fit_rows", 2)
    check_float(params["working_memory"], "working_memory", 0.0)
    if params["scaling_fence"] is not None:
        check_float(params["scaling_fence"], "scaling_fence", 0.0, low_open=False)


def training_config(params, X_fit, n_unlabeled, n_threads):
    """Settle every ``"auto"`` of ODIM's parameters for a fit on ``X_fit``.

    Parameters
    ----------
    params : dict
        ``ODIM.get_params()``; the choices and floats already validated
        (:func:`check_parameters`), the integers are checked here.
    X_fit : ndarray of shape (n_fit, n_features)
        The fitting rows (all rows, or the ``max_fit_rows`` sample).
    n_unlabeled : int
        Fitting rows the IWAE term trains on (the rows not known outliers).
    n_threads : int
        CPU threads, already resolved.

    Returns
    -------
    architecture : pyod_odim.network.Architecture
    config : pyod_odim.training.TrainingConfig
        Every field settled: members, importance samples, learning rate,
        patience, warm-up, selection size, likelihood and checkpoint rule.
    """
    n_features = X_fit.shape[1]
    width = defaults_for_width(n_features)
    likelihood = params["likelihood"]
    if likelihood == "auto":
        likelihood = likelihood_for_data(X_fit)
    n_score = check_int(params["n_samples_iwae"], "n_samples_iwae", 1)
    n_train = n_score
    if params["n_samples_train"] is not None:
        n_train = _int_or_auto(params["n_samples_train"], width.n_samples_train,
                               "n_samples_train", 1)
    n_members = width.n_estimators
    if params["n_estimators"] is not None:
        n_members = check_int(params["n_estimators"], "n_estimators", 1)
    n_check = n_train
    if params["n_samples_check"] is not None:
        n_check = check_int(params["n_samples_check"], "n_samples_check", 1)
    selection_size = params["selection_size"]
    if selection_size is not None:
        selection_size = _int_or_auto(selection_size, width.selection_size, "selection_size", 2)
    batch_size = check_int(params["batch_size"], "batch_size", 1)
    min_updates = params["min_updates"]
    if _is_auto(min_updates):
        min_updates = warm_up_updates(width, n_unlabeled, batch_size)
    else:
        min_updates = check_int(min_updates, "min_updates", 0)
    checkpoint = params["checkpoint"]
    if checkpoint == "auto":
        checkpoint = CHECKPOINT_FOR_LIKELIHOOD[likelihood]
    config = TrainingConfig(
        n_members=n_members,
        n_samples=n_score,
        batch_size=batch_size,
        lr=LEARNING_RATES[likelihood] if _is_auto(params["lr"]) else float(params["lr"]),
        check_every=check_int(params["check_every"], "check_every", 1),
        patience=_int_or_auto(params["patience"], width.patience, "patience", 1),
        max_updates=check_int(params["max_updates"], "max_updates", 1),
        min_updates=min_updates,
        smoothing=check_int(params["smoothing"], "smoothing", 1),
        selection_size=selection_size,
        distance=params["distance"],
        likelihood=likelihood,
        batch_norm=bool(params["batch_norm"]),
        cubo_weight=float(params["cubo_weight"]),
        cubo_order=float(params["cubo_order"]),
        n_samples_train=n_train,
        # Checks use the first draws of the fixed scoring draws.
        n_samples_check=min(n_check, n_score),
        n_threads=n_threads,
        keep_last=checkpoint == "last",
    )
    arch = architecture(n_features, params["hidden_sizes"], params["latent_dim"])
    return arch, config


def resolve_precision(precision, engine_name, device, n_features):
    """The precision of a fit's training products: ``precision_``.

    ``"auto"`` is ``"bfloat16"`` above :data:`WIDE_FEATURES` features where
    :func:`bf16_units` holds: there the products dominate an update and run
    several times faster, and the narrow (tabular) fits stay bit-identical
    to float32. ``"bfloat16"`` on the kernel engine without the units falls
    back to float32 with a warning; PyTorch engines emulate it anywhere.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
    engine_name : {"kernel", "inductor", "eager"}
    device : torch.device
    n_features : int

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``.
    """
    if precision == "auto":
        wide = n_features > WIDE_FEATURES
        return "bfloat16" if wide and bf16_units(engine_name, device) else "float32"
    if precision == "bfloat16" and engine_name == "kernel" and not kernels.bf16_units():
        warnings.warn("precision='bfloat16': this CPU has no AMX with AVX512-BF16 "
                      "(or the kernels were built without them); running float32",
                      RuntimeWarning, stacklevel=3)
        return "float32"
    return precision

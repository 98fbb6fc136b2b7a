"""Figures for a fitted ODIM: checkpoint selection and score distribution.

matplotlib is an optional dependency (``pip install pyod-odim[plot]``); it is
imported only when a function here is called.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .thresholds import fitted_score_threshold

_PIP_HINT = "plotting needs matplotlib: pip install pyod-odim[plot]"

_DISTANCE_LABELS = {
    "sigma": "squared W2 distance between GMM-2 components",
    "variance": "GMM-2 component distance (variance form)",
}


def pyplot():
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(_PIP_HINT) from None
    return plt


def figure_axes(ax, figsize):
    """``(figure, ax)`` of ``ax``, or of a new figure of ``figsize`` inches when it is None."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def plot_selection(detector, ax=None):
    """Plot each member's selection criterion against the update count.

    One line per ensemble member: the distance between the two components
    of the Gaussian mixture fitted to its normalized losses, at every check.
    A dot marks the checkpoint the member kept (its largest distance); the
    line ends where patience stopped the member.

    Parameters
    ----------
    detector : ODIM
        A fitted detector.

    ax : matplotlib Axes or None, optional (default=None)
        Where to draw; ``None`` creates a new figure.

    Returns
    -------
    fig : matplotlib Figure
        The figure holding the plot.
    """
    check_is_fitted(detector, ["history_", "best_update_"])
    fig, ax = figure_axes(ax, (5.5, 4.0))
    updates = np.asarray(detector.history_["update"])
    distances = np.asarray(detector.history_["distance"])
    n_members = distances.shape[1]
    for m in range(n_members):
        color = f"C{m % 10}"
        ax.plot(updates, distances[:, m], color=color, lw=1.2, alpha=0.85)
        ax.plot(detector.best_update_[m], detector.best_distance_[m], "o",
                color=color, ms=6, mec="black", mew=0.6)
    # Proxy entries: a legend per member would hide the curves.
    ax.plot([], [], color="gray", lw=1.2, label=f"one line per member ({n_members})")
    ax.plot([], [], "o", color="white", mec="black", mew=0.6, label="kept checkpoint")
    ax.set_xlabel("update")
    ax.set_ylabel(_DISTANCE_LABELS.get(getattr(detector, "distance", None), "criterion"))
    ax.set_title("Checkpoint selection")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    return fig


def plot_score_histogram(detector, y=None, ax=None, scores=None, bins=50):
    """Histogram of outlier scores, split by ground truth when given.

    Parameters
    ----------
    detector : ODIM
        A fitted detector; its cut in score units, ``score_threshold_``
        (``threshold_`` for a numeric ``contamination``), is drawn as a
        dashed line.

    y : array-like of shape (n_samples,) or None, optional (default=None)
        Ground truth (1 = outlier). When given, inliers and outliers get
        separate density-normalized histograms so both stay visible even
        when outliers are rare.

    ax : matplotlib Axes or None, optional (default=None)
        Where to draw; ``None`` creates a new figure.

    scores : array-like of shape (n_samples,) or None, optional (default=None)
        Scores to show; ``None`` uses the training ``decision_scores_``.
        Pass ``detector.decision_function(X_new)`` to show new data.

    bins : int, optional (default=50)
        Number of histogram bins (shared by both groups).

    Returns
    -------
    fig : matplotlib Figure
        The figure holding the plot.
    """
    check_is_fitted(detector, ["decision_scores_", "threshold_"])
    scores = np.asarray(detector.decision_scores_ if scores is None else scores, dtype=float)
    fig, ax = figure_axes(ax, (5.5, 4.0))
    edges = np.histogram_bin_edges(scores, bins=bins)
    if y is None:
        ax.hist(scores, bins=edges, color="tab:blue", alpha=0.8)
        ax.set_ylabel("rows")
    else:
        y = np.asarray(y).ravel()
        if y.shape[0] != scores.shape[0]:
            raise ValueError(f"y has {y.shape[0]} labels but there are {scores.shape[0]} scores")
        for value, name, color in ((0, "inliers", "tab:blue"), (1, "outliers", "tab:red")):
            part = scores[y == value]
            if part.size:
                ax.hist(part, bins=edges, density=True, alpha=0.55, color=color,
                        label=f"{name} (n={part.size})")
        ax.set_ylabel("density")
    ax.axvline(fitted_score_threshold(detector), color="black", ls="--", lw=1,
               label=_threshold_label(detector.contamination))
    ax.set_xlabel(_score_label(detector))
    ax.set_title("Outlier scores")
    ax.legend(fontsize="small", frameon=False)
    return fig


def _score_label(detector):
    """What the detector's scores are, for an axis."""
    scorer = getattr(detector, "scorer_", None)
    if getattr(scorer, "neighbors", None) is not None:
        return "outlier score (blended with the known outliers' neighbour ratio)"
    if getattr(scorer, "stage", None) is not None:
        return "outlier score (robust z: IWAE bound or neighbour distance)"
    return "outlier score (negative IWAE bound)"


def _threshold_label(contamination):
    if isinstance(contamination, (float, int)):
        return f"threshold (contamination={contamination:g})"
    return f"threshold ({type(contamination).__name__} thresholder)"


def plot_summary(detector, y=None, scores=None):
    """Checkpoint selection and score histogram side by side.

    Parameters
    ----------
    detector : ODIM
        A fitted detector.

    y : array-like of shape (n_samples,) or None, optional (default=None)
        Ground truth for the histogram (see :func:`plot_score_histogram`).

    scores : array-like of shape (n_samples,) or None, optional (default=None)
        Scores for the histogram; ``None`` uses ``decision_scores_``.

    Returns
    -------
    fig : matplotlib Figure
        A new figure with two panels.
    """
    check_is_fitted(detector, ["history_", "decision_scores_"])
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    plot_selection(detector, ax=left)
    plot_score_histogram(detector, y=y, ax=right, scores=scores)
    return fig

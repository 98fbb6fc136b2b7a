"""Why a row is an outlier: charts and tables of ODIM's feature contributions.

:meth:`pyod_odim.ODIM.feature_contributions` splits each row's likelihood
score into one term per feature (positive: the feature pushes the row
towards outlier, measured against what it costs a typical training row).
This module presents them:

* :func:`explain_outlier` draws one row's contributions against the
  training rows' contribution quantiles (the cut-off bands), in the shape of
  PyOD's ``COPOD.explain_outlier`` and ``ECOD.explain_outlier``; the method
  :meth:`pyod_odim.ODIM.explain_outlier` calls it.
* :func:`plot_top_contributions` draws the contributions of the highest-scored
  rows side by side (the command line's ``--plot``).
* :func:`top_features` and :func:`cutoff_bands` are the numbers behind them:
  each row's features with the largest contributions (``odim score
  --explain K``), and the bands interpolated in the quantiles kept by ``fit``.

ODIM does not keep its training rows (model size, and a saved model holds
no data), so the rows to explain are passed as ``X``. matplotlib is needed
only by the plotting functions (``pip install pyod-odim[plot]``).

>>> fig = clf.explain_outlier(7, X=X_train)          # doctest: +SKIP
>>> top = top_features(clf.feature_contributions(X), 3)  # doctest: +SKIP
"""

import numbers
import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import FLOAT_DTYPES, check_samples
from .plotting import figure_axes

__all__ = ["cutoff_bands", "explain_outlier", "feature_labels", "plot_top_contributions",
           "top_features"]

DEFAULT_CUTOFFS = (0.95, 0.99)


_NO_ROWS = (
    "ODIM does not keep its training rows (a fitted or saved model holds no data); "
    "pass the rows to explain as X, e.g. clf.explain_outlier({ind}, X=X_train), "
    "and ind picks a row of X"
)

_Y_LABEL = "contribution to the score\n(against a typical training row)"


# ----------------------------------------------------------------------
# Numbers
def cutoff_bands(quantiles, cutoffs):
    """The training rows' contribution quantiles at ``cutoffs``, per feature.

    Parameters
    ----------
    quantiles : ndarray of shape (101, n_features)
        Percentiles 0, 1, ..., 100 of the contributions of fitting rows
        (``clf.scorer_.contribution_quantiles``).
    cutoffs : sequence of float in (0, 1)

    Returns
    -------
    bands : ndarray of shape (len(cutoffs), n_features)
        Linear interpolation between the two neighbouring percentiles.
    """
    quantiles = np.asarray(quantiles, dtype=np.float64)
    position = 100.0 * np.asarray(_check_cutoffs(cutoffs))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, quantiles.shape[0] - 1)
    frac = (position - low)[:, None]
    return (1.0 - frac) * quantiles[low] + frac * quantiles[high]


def top_features(contributions, k):
    """Each row's ``k`` features with the largest contributions, largest first.

    Parameters
    ----------
    contributions : ndarray of shape (n_samples, n_features)
        From :meth:`pyod_odim.ODIM.feature_contributions`.
    k : int
        At least 1 and at most ``n_features``.

    Returns
    -------
    index : ndarray of shape (n_samples, k), int
        Feature indices; ties go to the lower index.
    """
    contributions = np.asarray(contributions, dtype=np.float64)
    if contributions.ndim != 2:
        raise ValueError(f"contributions must be 2-D, got shape {contributions.shape}")
    d = contributions.shape[1]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= d:
        raise ValueError(f"k must be an integer in [1, {d}], got {k!r}")
    # A stable sort of the negated values keeps lower indices first among ties.
    return np.argsort(-contributions, axis=1, kind="stable")[:, :int(k)]


def feature_labels(detector, feature_names=None):
    """Display names of a fitted detector's features.

    Parameters
    ----------
    detector : pyod_odim.ODIM
        Fitted.
    feature_names : sequence of str or None, optional (default=None)
        One name per feature; ``None`` uses ``feature_names_in_`` when the
        detector was fitted on a DataFrame, else ``"x0"``, ``"x1"``, ...

    Returns
    -------
    names : list of str

    Raises
    ------
    ValueError
        ``feature_names`` with a length other than ``n_features_in_``.
    """
    d = int(detector.n_features_in_)
    if feature_names is None:
        names = getattr(detector, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{j}" for j in range(d)]
    if isinstance(feature_names, str):
        raise ValueError("feature_names must be a sequence of names, not a single string")
    names = [str(n) for n in feature_names]
    if len(names) != d:
        raise ValueError(
            f"feature_names has {len(names)} names, but the model was fitted on {d} "
            f"features; give one name per feature (columns picks which to plot)"
        )
    return names


# ----------------------------------------------------------------------
# Checks
def _check_cutoffs(cutoffs):
    if cutoffs is None:
        return list(DEFAULT_CUTOFFS)
    if isinstance(cutoffs, (str, bytes)) or np.ndim(cutoffs) != 1 or len(cutoffs) == 0:
        raise ValueError(f"cutoffs must be a non-empty list of floats in (0, 1), got {cutoffs!r}")
    values = []
    for c in cutoffs:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Real) \
                or not 0.0 < float(c) < 1.0:
            raise ValueError(f"cutoffs must be floats in (0, 1) (e.g. [0.95, 0.99]), got {c!r}")
        values.append(float(c))
    return values


def _check_index(ind, n_rows):
    if isinstance(ind, (bool, np.bool_)) or not isinstance(ind, numbers.Integral):
        raise ValueError(f"ind must be an integer row index, got {type(ind).__name__} {ind!r}")
    if not -n_rows <= ind < n_rows:
        raise ValueError(f"ind={ind} is out of range for X with {n_rows} rows")
    return int(ind) % n_rows


def _check_columns(columns, d):
    if columns is None:
        return np.arange(d)
    if isinstance(columns, (str, bytes)) or np.ndim(columns) != 1 or len(columns) == 0:
        raise ValueError(f"columns must be a non-empty list of feature indices, got {columns!r}")
    out = []
    for j in columns:
        if isinstance(j, (bool, np.bool_)) or not isinstance(j, numbers.Integral):
            raise ValueError(f"columns must hold integer feature indices, got {j!r}")
        if not 0 <= j < d:
            raise ValueError(f"column {j} is out of range: the model has {d} features "
                             f"(indices 0 to {d - 1})")
        out.append(int(j))
    return np.asarray(out)


def _quantiles(detector):
    quantiles = getattr(detector.scorer_, "contribution_quantiles", None)
    if quantiles is None:
        raise ValueError("this detector has no contribution quantiles (fitted by an earlier "
                         "version of pyod-odim); fit it again to explain its rows")
    return quantiles


# ----------------------------------------------------------------------
# Figures


def _set_feature_ticks(ax, positions, names):
    # Long or many names would overlap when horizontal.
    slanted = len(names) > 8 or max(len(n) for n in names) > 6
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=45 if slanted else 0, ha="right" if slanted else "center")


def _save(fig, file_name, file_type):
    # PyOD's explain_outlier writes file_name + "." + file_type (png when
    # None); a file_name that already ends in a known type is kept as it is.
    name = os.fspath(file_name)
    if file_type is None:
        kinds = fig.canvas.get_supported_filetypes()
        known = os.path.splitext(name)[1][1:].lower() in kinds
        path, kind = (name, None) if known else (f"{name}.png", "png")
    else:
        kind = str(file_type).lstrip(".")
        path = f"{name}.{kind}"
    fig.savefig(path, format=kind, dpi=300)
    return path


def explain_outlier(detector, ind, X=None, columns=None, cutoffs=None, feature_names=None,
                    file_name=None, file_type=None, ax=None):
    """Chart one row's feature contributions against the training rows' bands.

    A bar per feature: the row's contribution to its score
    (:meth:`pyod_odim.ODIM.feature_contributions`); a dashed segment per
    cut-off: that quantile of the fitting rows' contributions of the feature
    (interpolated in the percentiles ``fit`` kept, a sample of 512 fitting
    rows). Bars above the highest band are red: those features are more
    unusual in this row than in all but ``1 - max(cutoffs)`` of the
    training rows. The title names the row, its label and its score.

    Parameters
    ----------
    detector : pyod_odim.ODIM
        Fitted.
    ind : int
        The row of ``X`` to explain (negative values count from the end).
    X : array-like of shape (n_samples, n_features)
        Rows to pick from, e.g. the training rows: ODIM does not keep them.
    columns : list of int or None, optional (default=None)
        Feature indices to plot, in that order; ``None`` plots all.
    cutoffs : list of float in (0, 1) or None, optional (default=None)
        Quantiles drawn as cut-off bands; ``None`` is ``[0.95, 0.99]``.
    feature_names : list of str or None, optional (default=None)
        One display name per feature of the model (``columns`` picks among
        them); ``None`` uses ``feature_names_in_`` when the detector was
        fitted on a DataFrame, else ``x0``, ``x1``, ...
    file_name : str or None, optional (default=None)
        Save the figure there, as PyOD does: ``file_name + "." + file_type``
        (``.png`` when ``file_type`` is None, unless ``file_name`` already
        ends in a type matplotlib writes), at 300 dpi.
    file_type : str or None, optional (default=None)
        e.g. ``"png"``, ``"pdf"``, ``"svg"``.
    ax : matplotlib Axes or None, optional (default=None)
        Where to draw; ``None`` creates a new figure.

    Returns
    -------
    fig : matplotlib Figure

    Raises
    ------
    ValueError
        ``X`` missing (ODIM keeps no training rows) or of the wrong shape;
        ``ind`` not an integer or out of range; ``columns`` not integers in
        ``[0, n_features)``; ``feature_names`` of the wrong length;
        ``cutoffs`` outside (0, 1).
    ImportError
        Without matplotlib.

    Notes
    -----
    The row's label is ``decision_function > score_threshold_``, the label
    ``predict`` gives a row on its own (with a thresholder as
    ``contamination``, see :mod:`pyod_odim.thresholds`). In semi-supervised
    mode the contributions explain ODIM's likelihood part of the score, not
    the blend with the known outliers' neighbour ratio.
    """
    check_is_fitted(detector, ["scorer_", "decision_scores_"])
    if X is None:
        raise ValueError(_NO_ROWS.format(ind=ind))
    d = int(detector.n_features_in_)
    X = check_samples(X, n_features=d, dtype=FLOAT_DTYPES, accept_sparse=True)
    ind = _check_index(ind, X.shape[0])
    columns = _check_columns(columns, d)
    cutoffs = _check_cutoffs(cutoffs)
    names = feature_labels(detector, feature_names)
    quantiles = _quantiles(detector)

    row = X[ind:ind + 1]
    values = detector.feature_contributions(row)[0][columns]
    score = float(detector.decision_function(row)[0])
    from .thresholds import fitted_score_threshold

    outlier = score > fitted_score_threshold(detector)
    bands = cutoff_bands(quantiles[:, columns], cutoffs)

    fig, ax = figure_axes(ax, (max(7.5, 4.5 + 0.4 * len(columns)), 4.2))
    positions = np.arange(len(columns))
    above = values > bands.max(axis=0)
    ax.bar(positions, values, width=0.7, color=np.where(above, "tab:red", "tab:blue"),
           label="this row")
    if above.any():  # a legend entry for the red bars
        ax.bar([0], [0], width=0, color="tab:red", label=f"above the {max(cutoffs):g} band")
    styles = ["--", ":", "-.", (0, (5, 1))]
    for i, (cutoff, band) in enumerate(zip(cutoffs, bands)):
        ax.hlines(band, positions - 0.42, positions + 0.42, colors=f"C{i + 2}",
                  linestyles=styles[i % len(styles)], lw=1.6,
                  label=f"{cutoff:g} cutoff band (training rows)")
    ax.axhline(0.0, color="black", lw=0.6)
    _set_feature_ticks(ax, positions, [names[j] for j in columns])
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_xlabel("feature")
    ax.set_ylabel(_Y_LABEL)
    ax.set_title(f"Score breakdown of row {ind} ({'outlier' if outlier else 'inlier'}, "
                 f"score {score:.4g})")
    # Beside the axes: inside, it would cover the tallest bars.
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if file_name is not None:
        _save(fig, file_name, file_type)
    return fig


def plot_top_contributions(detector, X, scores=None, n_rows=5, max_features=12,
                           feature_names=None, ax=None):
    """Heat map of the highest-scored rows' feature contributions.

    One line per row (the ``n_rows`` highest scores, highest first), one
    column per feature among the largest contributions of those rows (up
    to ``max_features``, ordered by their largest contribution there); the
    colour and the number in a cell are the contribution.

    Parameters
    ----------
    detector : pyod_odim.ODIM
        Fitted.
    X : array-like of shape (n_samples, n_features)
        The rows the scores belong to.
    scores : array-like of shape (n_samples,) or None, optional (default=None)
        Their scores; ``None`` computes ``decision_function(X)``.
    n_rows : int, optional (default=5)
    max_features : int, optional (default=12)
    feature_names : list of str or None, optional (default=None)
        As for :func:`explain_outlier`.
    ax : matplotlib Axes or None, optional (default=None)

    Returns
    -------
    fig : matplotlib Figure
    """
    check_is_fitted(detector, ["scorer_", "decision_scores_"])
    d = int(detector.n_features_in_)
    X = check_samples(X, n_features=d, dtype=FLOAT_DTYPES, accept_sparse=True)
    scores = detector.decision_function(X) if scores is None else np.asarray(scores, float)
    if scores.shape != (X.shape[0],):
        raise ValueError(f"scores has shape {scores.shape}, expected ({X.shape[0]},)")
    names = feature_labels(detector, feature_names)
    rows = np.argsort(-scores, kind="stable")[:max(1, int(n_rows))]
    c = detector.feature_contributions(X[rows])
    # Features that matter for these rows: each row's largest first, then by size.
    k = min(d, int(max_features))
    ranked = top_features(c, k)
    chosen = list(dict.fromkeys(ranked.T.ravel()))[:k]
    chosen.sort(key=lambda j: -c[:, j].max())
    shown = c[:, chosen]

    fig, ax = figure_axes(ax, (max(6.0, 2.5 + 0.7 * len(chosen)), 1.2 + 0.5 * len(rows)))
    limit = float(np.abs(shown).max()) or 1.0
    image = ax.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(shown):
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize="x-small",
                color="white" if abs(value) > 0.6 * limit else "black")
    _set_feature_ticks(ax, np.arange(len(chosen)), [names[j] for j in chosen])
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels([f"row {i} ({scores[i]:.4g})" for i in rows])
    ax.figure.colorbar(image, ax=ax, label="contribution", shrink=0.9)
    ax.set_title("Feature contributions of the highest-scored rows (row, score)")
    return fig

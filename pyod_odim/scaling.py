"""The per-feature map from raw input to the network's input range.

ODIM min-max scales every feature with bounds taken from the fitting rows
(the paper's Table 10 found min-max ahead of standardization). Two rules
keep that map meaningful for every finite input:

* **Fenced bounds.** A handful of extreme rows (a sentinel 9.99e12, a value
  in the wrong unit) would otherwise decide the scale of every other row:
  one row at 1e12 maps all others into a sliver near 0. A feature's
  highest values are detached when a gap separates them from the rest that
  is more than ``fence`` times the span of everything below it (and
  likewise for its lowest values), and at most 1 % of the rows may be
  detached that way (:func:`fenced_bounds`); the bounds are the extreme
  values that are not detached. On data without such gaps the bounds are
  the plain minimum and maximum, so the paper's map is unchanged there
  (:data:`DEFAULT_FENCE`).
* **Clipping with an overshoot cost.** The network sees every scaled value
  clipped to a box around [0, 1] (:func:`network_box`: ten bound-widths
  beyond the bounds on either side for the Gaussian decoder, from 0 up for
  the rectified one, [0, 1] itself for the Bernoulli one), so its float32
  arithmetic never overflows, and a row just outside the training range
  is scored by the network as before.
  How far a value lies beyond the box is charged in float64 as the
  negative log-likelihood a Gaussian with the decoder's smallest variance
  would add (:func:`overshoot_cost`). A row farther out along a feature
  never scores lower than a nearer one, and no finite input gives a NaN
  score.

The bounds are the only state, so :class:`FeatureScaling` is a pair of
float64 arrays that save, load and export as they are.
"""

import numpy as np

from .sparse import column_extremes, sorted_columns

MAX_DETACHED_SHARE = 0.01
"""float: at most this share of a feature's rows may be detached on each side."""

DEFAULT_FENCE = 1000.0
"""float: how many times the span below it a gap must exceed to detach what lies beyond.

On the 22 shared benchmark sets it detaches one row of 20news_3 and one of
svhn_0, and at most one row of a training split of PyOD's benchmark
protocol (60 %, standardized; ``tests/test_extreme_inputs.py``), while a
sentinel, an overflow or a unit mistake of three orders of magnitude is
detached. (A rule on the 0.5 %-99.5 % spread instead detached dozens of
rows from features whose central values nearly coincide, e.g. 342
training rows of a pendigits split.)
"""

# Overshoot costs use the decoder's largest precision, exp(6) (its
# log-variance is clamped at -6): a value beyond the range costs at least as
# much as the decoder could charge it. The excess is capped before squaring
# and the row's sum after, so scores stay finite (and their squares, which
# PyOD's predict_proba takes, too); the cost never decreases with distance.
OVERSHOOT_PRECISION = float(np.exp(6.0))
MAX_EXCESS = 1e40
MAX_OVERSHOOT_COST = 1e100


def fenced_bounds(X, fence=DEFAULT_FENCE, max_share=MAX_DETACHED_SHARE):
    """Per-feature minimum and maximum of the values that are not detached.

    With a feature's values sorted, ``v_0 <= ... <= v_{n-1}``, its top
    values ``v_{i+1}, ...`` are detached at the lowest ``i`` among the last
    ``ceil(max_share * n)`` positions where the gap ``v_{i+1} - v_i``
    exceeds ``fence * (v_i - v_0)`` (and ``v_i > v_0``, so that a rare
    second value of a binary feature is never detached); the lowest values
    likewise. The upper bound is then ``v_i``.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Finite values; a sparse matrix's implicit zeros count as values.
    fence : float or None, optional (default=1000)
        None gives the plain minimum and maximum.
    max_share : float, optional (default=0.01)

    Returns
    -------
    low, high : ndarray of shape (n_features,), float64
    """
    low, high = (bound.astype(np.float64) for bound in column_extremes(X))
    n = X.shape[0]
    if fence is None or n < 3:
        return low, high
    n_tail = max(1, int(np.ceil(max_share * n)))
    for j, column in enumerate(sorted_columns(X)):
        values = column.astype(np.float64)
        high[j] = _top_kept(values, fence, n_tail)
        low[j] = -_top_kept(-values[::-1], fence, n_tail)
    return low, high


def _top_kept(values, fence, n_tail):
    """The largest value of sorted ``values`` that no wide gap detaches."""
    n = values.shape[0]
    cuts = np.arange(max(0, n - 1 - n_tail), n - 1)
    with np.errstate(over="ignore", invalid="ignore"):
        gaps = values[cuts + 1] - values[cuts]
        below = values[cuts] - values[0]
        wide = (below > 0) & (gaps > fence * below)
    return values[cuts[np.argmax(wide)]] if wide.any() else values[-1]


GAUSSIAN_MARGIN = 10.0
"""float: bound-widths beyond [0, 1] that the Gaussian decoder's input reaches."""


def network_box(likelihood):
    """The interval the network's inputs are clipped to.

    Held-out rows a little outside the training range keep the network's own
    (sigmoid-mean, clamped-variance) account of them, which measured better
    on unseen rows than clipping at [0, 1] (``studies/bench_heldout_scaling.py``);
    ten bound-widths keep every activation far from float32's range. A
    Bernoulli likelihood is defined on [0, 1] only, the rectified Gaussian
    from its floor 0 up: a value below a feature's training minimum is seen
    as that floor and pays the overshoot cost of its distance.

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "rectified"}

    Returns
    -------
    low, high : float
    """
    if likelihood == "bernoulli":
        return (0.0, 1.0)
    low = 0.0 if likelihood == "rectified" else -GAUSSIAN_MARGIN
    return (low, 1.0 + GAUSSIAN_MARGIN)


def overshoot_cost(excess):
    """Cost of scaled values beyond the network's box, per value.

    Parameters
    ----------
    excess : ndarray
        Distance of each scaled value from the box (0 inside), float64.

    Returns
    -------
    cost : ndarray of excess's shape, float64
        ``0.5 * exp(6) * min(excess, 1e40) ** 2``.
    """
    capped = np.minimum(excess, MAX_EXCESS)
    return 0.5 * OVERSHOOT_PRECISION * capped * capped


class FeatureScaling:
    """Map each feature linearly so that its bounds become 0 and 1.

    ``transform(X) = X * scale_ + offset_`` with
    ``scale_ = 1 / (high - low)`` and ``offset_ = -low * scale_``; a feature
    whose bounds (nearly) coincide keeps ``scale_ = 1``, as in
    scikit-learn's ``MinMaxScaler``, whose arithmetic this reproduces.

    Parameters
    ----------
    data_min : ndarray of shape (n_features,)
        Lower bound of each feature (maps to 0).
    data_max : ndarray of shape (n_features,)
        Upper bound of each feature (maps to 1).

    Attributes
    ----------
    data_min_, data_max_ : ndarray of shape (n_features,), float64
    scale_, offset_ : ndarray of shape (n_features,), float64
    """

    def __init__(self, data_min, data_max):
        self.data_min_ = np.array(data_min, dtype=np.float64)
        self.data_max_ = np.array(data_max, dtype=np.float64)
        if self.data_min_.shape != self.data_max_.shape or self.data_min_.ndim != 1:
            raise ValueError("data_min and data_max must be 1-D arrays of one shape")
        with np.errstate(over="ignore"):
            data_range = self.data_max_ - self.data_min_
        # Same rule as scikit-learn: a (near-)constant feature is not divided.
        constant = data_range < 10 * np.finfo(np.float64).eps
        self.scale_ = 1.0 / np.where(constant, 1.0, data_range)
        self.offset_ = -self.data_min_ * self.scale_

    @classmethod
    def fit(cls, X, fence=DEFAULT_FENCE):
        """Bounds from the rows ``X`` (n_samples, n_features) by :func:`fenced_bounds`."""
        return cls(*fenced_bounds(X, fence))

    @property
    def n_features(self):
        """int: number of features."""
        return self.data_min_.shape[0]

    def transform(self, X):
        """Scaled copy of ``X`` (not clipped), in ``X``'s float dtype.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32 or float64

        Returns
        -------
        X_scaled : ndarray of shape (n_samples, n_features)
        """
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        with np.errstate(over="ignore"):
            out = np.multiply(X, self.scale_.astype(dtype, copy=False), dtype=dtype)
            out += self.offset_.astype(dtype, copy=False)
        return out

    def transform_values(self, values, columns, box=(0.0, 1.0), floor=False):
        """Single values scaled and clipped: ``values[i]`` is a value of feature ``columns[i]``.

        Value by value the arithmetic of :meth:`transform_clipped`, so the
        stored values of a sparse matrix scale exactly as in its dense copy.

        Parameters
        ----------
        values : ndarray of shape (m,), float32 or float64
        columns : ndarray of int, shape (m,)
        box, floor
            As for :meth:`transform_clipped`.

        Returns
        -------
        clipped : ndarray of shape (m,), in ``values``' float dtype
        """
        dtype = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
        with np.errstate(over="ignore"):
            out = np.multiply(values, self.scale_.astype(dtype, copy=False)[columns], dtype=dtype)
            out += self.offset_.astype(dtype, copy=False)[columns]
        if floor and out.dtype != np.float64:
            out[values == self.data_min_[columns]] = 0.0
        return np.clip(out, box[0], box[1], out=out)

    def transform_clipped(self, X, box=(0.0, 1.0), per_feature=False, floor=False):
        """Scaled rows clipped to ``box``, and each row's overshoot cost.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32 or float64
        box : tuple of float, optional (default=(0, 1))
            The interval values are clipped to (:func:`network_box`).
        per_feature : bool, optional (default=False)
            Return each value's cost instead of each row's.
        floor : bool, optional (default=False)
            Map a value equal to its feature's lower bound to exactly 0, as
            the rectified likelihood's point mass needs; float32 rounding of
            ``X * scale_ + offset_`` can otherwise leave a few ulps (in
            float64 it is exactly 0 already: ``offset_`` is the negated
            product ``data_min_ * scale_``).

        Returns
        -------
        X_clipped : ndarray of shape (n_samples, n_features)
            In ``X``'s float dtype, every value in ``box``.
        cost : ndarray of shape (n_samples,) or (n_samples, n_features), float64
            Sum over features of :func:`overshoot_cost`, capped at
            :data:`MAX_OVERSHOOT_COST`; 0 for rows inside the box. With
            ``per_feature``, :func:`overshoot_cost` of each value (uncapped
            sum).
        """
        scaled = self.transform(X)
        if floor and scaled.dtype != np.float64:
            scaled[X == self.data_min_] = 0.0
        clipped = np.clip(scaled, box[0], box[1])
        # The scaled copy becomes the excess in place: no third row-sized array.
        excess = np.subtract(scaled, clipped, out=scaled)
        np.abs(excess, out=excess)
        if per_feature:
            return clipped, overshoot_cost(excess.astype(np.float64))
        cost = np.zeros(X.shape[0])
        rows = np.flatnonzero(excess.max(axis=1, initial=0.0) > 0.0)
        if rows.size:
            per_value = overshoot_cost(excess[rows].astype(np.float64))
            cost[rows] = np.minimum(per_value.sum(axis=1), MAX_OVERSHOOT_COST)
        return clipped, cost

"""The scoring stage after ODIM's early checkpoint: ODIM as a cleaner, then a neighbour distance.

ODIM's early checkpoint finds outliers that lie away from the bulk (global
outliers) well: the inlier-memorization effect. Outliers that sit in a
sparse pocket between inlier clusters (local outliers) need a scorer that
sees local structure. :class:`CleanedNeighborStage` adds one, trained only
on the rows ODIM trusts:

1. trusted rows: the fitting rows whose ODIM score lies at or below the
   ``1 - share`` quantile (:data:`DEFAULT_SHARE`: the 15 % highest ODIM
   scores are left out, whatever ``contamination`` says); at most
   ``max_reference`` of them, a seeded random subset, are kept as the
   reference rows;
2. the neighbour distance of a row: the Euclidean distance to its
   ``n_neighbors``-th nearest reference row, in ODIM's min-max scaling
   (:meth:`pyod_odim.scaling.FeatureScaling.transform`, clipped only at
   :data:`STAGE_CLIP`, far beyond the training range);
3. each part in robust units of the training rows,
   ``z = (value - median) / (1.4826 * MAD)``;
4. the score: ``max(z_odim, z_distance)``: a row is as abnormal as the part
   that finds it most abnormal, so global outliers keep ODIM's score and
   local ones get the distance's.

Training rows are scored exactly as new rows (a trusted row is its own
nearest reference row at distance 0), so scoring the training rows again
reproduces ``decision_scores_``. The numbers behind the design are in
docs/decisions.md ("Tabular data: a scoring stage beyond the early
checkpoint").
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

DEFAULT_SHARE = 0.15
"""float: share of the fitting rows, the highest ODIM scores, kept out of the reference.

A fixed share did better than the detector's ``contamination`` or a GMM-2
split of ODIM's scores (docs/decisions.md)."""

MAX_REFERENCE = 10000
"""int: the most reference rows a stage keeps (and a model file stores)."""

STAGE_CLIP = 1e6
"""float: scaled values are clipped to [-STAGE_CLIP, STAGE_CLIP] before a distance
(a row far beyond the training range stays finite, and far)."""

STAGE_ARRAYS = ("reference", "moments")
"""tuple of str: the arrays of a fitted :class:`CleanedNeighborStage`."""


def _clipped(X_scaled):
    return np.clip(np.asarray(X_scaled, dtype=np.float64), -STAGE_CLIP, STAGE_CLIP)


def robust_moments(values):
    """(median, 1.4826 * MAD) of ``values``; the standard deviation when the MAD is 0."""
    center = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - center)))
    if not spread > 0:
        spread = float(np.std(values))
    return center, spread if spread > 0 else 1.0


class CleanedNeighborStage:
    """ODIM's score and the neighbour distance to the rows ODIM trusts, whichever is higher.

    Parameters
    ----------
    share : float in (0, 1), optional (default=DEFAULT_SHARE)
        Share of the fitting rows, the highest ODIM scores, left out of the
        reference rows.
    n_neighbors : int, optional (default=5)
        The distance is to this nearest reference row.
    max_reference : int, optional (default=MAX_REFERENCE)
        The most reference rows kept.
    n_jobs : int, optional (default=1)
        Threads of the neighbour searches (scikit-learn's ``n_jobs``).
    """

    def __init__(self, share=DEFAULT_SHARE, n_neighbors=5, max_reference=MAX_REFERENCE,
                 n_jobs=1):
        self.share = share
        self.n_neighbors = n_neighbors
        self.max_reference = max_reference
        self.n_jobs = n_jobs

    def reference_rows(self, odim_scores, seed, trusted=None):
        """Sorted indices of the reference rows among the fitting rows (see :meth:`fit`)."""
        eligible = np.ones(len(odim_scores), bool) if trusted is None else trusted
        cut = np.quantile(odim_scores[eligible], 1.0 - self.share)
        rows = np.flatnonzero(eligible & (odim_scores <= cut))
        if len(rows) > self.max_reference:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(rows, self.max_reference, replace=False))
        return rows

    def fit_moments(self, odim_scores, distance):
        """Set the robust moments from the fitting rows' ODIM scores and distances."""
        self.moments_ = np.array(robust_moments(odim_scores) + robust_moments(distance))

    def set_reference(self, reference, moments=None):
        """Set the scaled reference rows, and the moments when given (a model file has both)."""
        self._set_reference(np.asarray(reference))
        if moments is not None:
            self.moments_ = np.asarray(moments, dtype=np.float64)
        return self

    def fit(self, X_scaled, odim_scores, seed, trusted=None):
        """Choose the reference rows and the robust moments; return the training scores.

        Parameters
        ----------
        X_scaled : ndarray of shape (n_samples, n_features)
            Fitting rows in ODIM's scaling.
        odim_scores : ndarray of shape (n_samples,)
            Their ODIM scores.
        seed : int
            Seeds the subset of the reference rows.
        trusted : ndarray of bool, shape (n_samples,), optional
            Rows that may be reference rows at all (the unlabeled ones in
            semi-supervised mode); all rows when None.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        self._set_reference(X_scaled[self.reference_rows(odim_scores, seed, trusted)])
        distance = self.distance(X_scaled)
        self.fit_moments(odim_scores, distance)
        return self.combine(odim_scores, distance)

    def __getstate__(self):
        # The search is rebuilt from the reference rows, exactly, on first use:
        # pickles (and Dask's shipped models) carry the rows once, not the tree too.
        state = self.__dict__.copy()
        state.pop("search_", None)
        return state

    def _set_reference(self, rows):
        # Stored in float32 (half the file); the search runs on exactly these values.
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.size and np.abs(rows).max() > STAGE_CLIP:
            rows = np.clip(rows, -STAGE_CLIP, STAGE_CLIP)
        self.reference_ = rows
        self.__dict__.pop("search_", None)

    def _search(self):
        # Built on first use, not at load: loading a model stays a read of arrays.
        if "search_" not in self.__dict__:
            k = min(self.n_neighbors, self.reference_.shape[0])
            self.search_ = NearestNeighbors(n_neighbors=k, n_jobs=self.n_jobs).fit(
                self.reference_.astype(np.float64))
        return self.search_

    def neighbors(self, X_scaled):
        """(distance, indices): the distance to each row's ``n_neighbors``-th nearest
        reference row, and the indices of its ``n_neighbors`` nearest, nearest first."""
        dist, index = self._search().kneighbors(_clipped(X_scaled))
        return dist[:, -1], index

    def distance(self, X_scaled):
        """Distance of each row to its ``n_neighbors``-th nearest reference row."""
        return self.neighbors(X_scaled)[0]

    def z_parts(self, odim_scores, distance):
        """(z_odim, z_distance): both parts in the training rows' robust units."""
        c_o, s_o, c_d, s_d = self.moments_
        return (odim_scores - c_o) / s_o, (distance - c_d) / s_d

    def combine(self, odim_scores, distance):
        return np.maximum(*self.z_parts(odim_scores, distance))

    def score(self, X_scaled, odim_scores):
        """Scores of rows ``X_scaled`` (ODIM's scaling) with ODIM scores ``odim_scores``."""
        return self.combine(odim_scores, self.distance(X_scaled))

    def contributions(self, X_scaled, odim_scores, odim_contributions, odim_rest):
        """Each feature's share of the stage's score, and the rest of it.

        A row whose ODIM part wins gets ODIM's contributions divided by
        ODIM's spread; its rest is ``(odim_rest - median) / spread``. A row
        whose distance wins splits ``distance / spread`` over the features in
        proportion to ``(x_j - m_j)^2``, where ``m`` is the mean of its
        ``n_neighbors`` nearest reference rows: the features in which the row
        differs from what the trusted rows around it look like (the mean
        is steadier than any one neighbour, whose own noise would spread
        the blame); its rest is ``-median / spread``. In both,
        ``score = sum_j contribution_j + rest`` exactly.

        Parameters
        ----------
        X_scaled : ndarray of shape (n, d)
        odim_scores : ndarray of shape (n,)
        odim_contributions : ndarray of shape (n, d)
            ODIM's contributions whose row sums plus ``odim_rest`` give
            ``odim_scores``.
        odim_rest : ndarray of shape (n,)

        Returns
        -------
        contributions : ndarray of shape (n, d)
        rest : ndarray of shape (n,)
        """
        distance, index = self.neighbors(X_scaled)
        z_odim, z_dist = self.z_parts(odim_scores, distance)
        c_o, s_o, c_d, s_d = self.moments_
        local_mean = self.reference_[index].astype(np.float64).mean(axis=1)
        gap = (_clipped(X_scaled) - local_mean) ** 2
        total = gap.sum(axis=1, keepdims=True)
        # A row at its neighbours' mean (total 0) splits evenly.
        share = np.divide(gap, total, out=np.full_like(gap, 1.0 / gap.shape[1]), where=total > 0)
        by_distance = share * (distance / s_d)[:, None]
        use_odim = z_odim >= z_dist
        out = np.where(use_odim[:, None], odim_contributions / s_o, by_distance)
        rest = np.where(use_odim, (odim_rest - c_o) / s_o, -c_d / s_d)
        return out, rest


SCORE_STAGES = ("auto", "neighbors", "paper")
"""tuple of str: the values of ``ODIM(score_stage=...)``.

:func:`pyod_odim.defaults.score_stage` settles "auto"."""

"""Known-outlier neighbour scores: the supervised half of semi-supervised ODIM.

ODIM's likelihood, even trained with a CUBO term on the known outliers,
scores a row by how badly the inliers' model explains it. Known outliers
say more than that: rows near them are likely outliers of the same kind.
:class:`NeighborScorer` turns that into a score and blends it with ODIM's:

1. reference inliers: the unlabeled training rows whose ODIM score lies at
   or below the ``inlier_quantile`` quantile of the unlabeled rows' scores
   (ODIM decides what is normal);
2. the neighbour ratio of a row, ``d_in / (d_in + d_out)``, where ``d_in``
   and ``d_out`` are its mean distances to its ``n_neighbors`` nearest
   reference inliers and nearest known outliers (in ODIM's min-max scaled
   space): near 1 close to known outliers and far from the inliers;
3. the score: ``(1 - weight) * F_odim(odim score) + weight * F_ratio(ratio)``,
   where each ``F`` is the training rows' empirical distribution function
   (mid-ranks), so that both parts are on the same [0, 1] scale.

Training rows are scored exactly as new rows (a training row is its own
neighbour at distance 0), so scoring the training rows reproduces the
training scores.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors


def _ecdf(sorted_values, values):
    """Mid-rank empirical distribution function of ``sorted_values`` at ``values``."""
    left = np.searchsorted(sorted_values, values, side="left")
    right = np.searchsorted(sorted_values, values, side="right")
    return (left + right) / (2.0 * len(sorted_values))


class NeighborScorer:
    """Blend ODIM's scores with the known outliers' neighbour ratio.

    Parameters
    ----------
    weight : float in [0, 1]
        Share of the neighbour ratio in the blend (the rest is ODIM's score).
    n_neighbors : int
        Neighbours averaged on each side (fewer when a side has fewer rows).
    inlier_quantile : float in (0, 1]
        Unlabeled rows with ODIM scores up to this quantile are the
        reference inliers.
    n_jobs : int or None
        Threads of the neighbour searches (scikit-learn's ``n_jobs``).
    """

    def __init__(self, weight, n_neighbors, inlier_quantile, n_jobs=1):
        self.weight = weight
        self.n_neighbors = n_neighbors
        self.inlier_quantile = inlier_quantile
        self.n_jobs = n_jobs

    def fit(self, X, odim_scores, labeled, chunk_rows=None):
        """Choose the reference rows and the training distributions.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), or callable
            Scaled training rows, or a function giving the scaled rows of an
            index array or a slice as an ndarray (rows kept elsewhere, e.g.
            sparse).
        odim_scores : ndarray of shape (n_samples,)
            ODIM's training scores (higher is more abnormal).
        labeled : ndarray of bool, shape (n_samples,)
            Known outliers; at least one, and at least one unlabeled row.
        chunk_rows : int or None, optional (default=None)
            Rows whose neighbour ratios are searched at once; None: all.

        Returns
        -------
        training_scores : ndarray of shape (n_samples,)
            The blended scores of the training rows.
        """
        rows = X if callable(X) else X.__getitem__
        unlabeled = ~labeled
        cut = np.quantile(odim_scores[unlabeled], self.inlier_quantile)
        inliers = unlabeled & (odim_scores <= cut)
        self._set_rows(rows(np.flatnonzero(inliers)), rows(np.flatnonzero(labeled)))
        n_rows = odim_scores.shape[0]
        chunk = n_rows if chunk_rows is None else max(1, int(chunk_rows))
        ratio = np.concatenate([self.ratio(rows(slice(start, start + chunk)))
                                for start in range(0, n_rows, chunk)])
        self.odim_sorted_ = np.sort(odim_scores)
        self.ratio_sorted_ = np.sort(ratio)
        return self._blend(odim_scores, ratio)

    def set_reference(self, inlier_rows, outlier_rows, odim_sorted, ratio_sorted):
        """Restore a fitted state from its arrays (as a model file holds them).

        Parameters
        ----------
        inlier_rows, outlier_rows : ndarray of shape (n_in, d) and (n_out, d)
            The scaled reference inliers and known outliers.
        odim_sorted, ratio_sorted : ndarray of shape (n_samples,)
            The training rows' sorted ODIM scores and neighbour ratios.

        Returns
        -------
        self
        """
        self._set_rows(inlier_rows, outlier_rows)
        self.odim_sorted_ = np.asarray(odim_sorted, dtype=np.float64)
        self.ratio_sorted_ = np.asarray(ratio_sorted, dtype=np.float64)
        return self

    def _set_rows(self, inlier_rows, outlier_rows):
        # The rows are kept: the searches are rebuilt from them, exactly, on load.
        self.inlier_rows_ = inlier_rows
        self.outlier_rows_ = outlier_rows
        self.n_inliers_ = int(inlier_rows.shape[0])
        self.n_outliers_ = int(outlier_rows.shape[0])
        self.inlier_search_ = self._search(inlier_rows)
        self.outlier_search_ = self._search(outlier_rows)

    def _search(self, rows):
        k = min(self.n_neighbors, rows.shape[0])
        return NearestNeighbors(n_neighbors=k, n_jobs=self.n_jobs).fit(rows)

    def ratio(self, X):
        """Neighbour ratio ``d_in / (d_in + d_out)`` of each row of ``X``."""
        d_in = self.inlier_search_.kneighbors(X)[0].mean(axis=1)
        d_out = self.outlier_search_.kneighbors(X)[0].mean(axis=1)
        total = d_in + d_out
        # A row that coincides with reference inliers and known outliers alike.
        return np.divide(d_in, total, out=np.full_like(total, 0.5), where=total > 0)

    def _blend(self, odim_scores, ratio):
        return ((1.0 - self.weight) * _ecdf(self.odim_sorted_, odim_scores)
                + self.weight * _ecdf(self.ratio_sorted_, ratio))

    def score(self, X, odim_scores):
        """Blended scores of rows ``X`` (scaled) with ODIM scores ``odim_scores``."""
        return self._blend(odim_scores, self.ratio(X))

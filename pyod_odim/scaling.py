"""The per-feature affine map from raw input to the network's [0, 1] range.

ODIM min-max scales every feature with bounds taken from the fitting rows
(the paper's Table 10 found min-max ahead of standardization). The bounds
are the only state, so :class:`FeatureScaling` is a pair of float64
arrays that save, load and export as they are.
"""

import numpy as np


class FeatureScaling:
    """Map each feature linearly so that its fitted bounds become 0 and 1.

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
        data_range = self.data_max_ - self.data_min_
        # Same rule as scikit-learn: a (near-)constant feature is not divided.
        constant = data_range < 10 * np.finfo(np.float64).eps
        self.scale_ = 1.0 / np.where(constant, 1.0, data_range)
        self.offset_ = -self.data_min_ * self.scale_

    @classmethod
    def fit(cls, X):
        """Bounds from the rows ``X`` (n_samples, n_features): their minima and maxima."""
        return cls(X.min(axis=0), X.max(axis=0))

    @property
    def n_features(self):
        """int: number of features."""
        return self.data_min_.shape[0]

    def transform(self, X):
        """Scaled copy of ``X``, in ``X``'s float dtype.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float32 or float64

        Returns
        -------
        X_scaled : ndarray of shape (n_samples, n_features)
        """
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        out = np.multiply(X, self.scale_.astype(dtype, copy=False), dtype=dtype)
        out += self.offset_.astype(dtype, copy=False)
        return out

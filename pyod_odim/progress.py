"""Progress reporting for long fits: a tqdm bar, plain lines, or nothing."""

import sys


class _Silent:
    def update(self, update, n_active):
        pass

    def close(self):
        pass


class _Lines:
    """One line per check, for ``verbose >= 2`` or when tqdm is missing."""

    def __init__(self, stream):
        self.stream = stream

    def update(self, update, n_active):
        print(f"ODIM update {update}: {n_active} member(s) still training", file=self.stream)

    def close(self):
        pass


class _Bar:
    def __init__(self, total, stream):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="ODIM", unit="upd", file=stream, leave=False)

    def update(self, update, n_active):
        self.bar.update(update - self.bar.n)
        self.bar.set_postfix(active=n_active, refresh=False)

    def close(self):
        self.bar.close()


def make_progress(verbose, max_updates, stream=None):
    """Pick how a fit reports progress.

    Parameters
    ----------
    verbose : int
        0: silent. 1: a tqdm bar when tqdm is installed and ``stream`` is a
        terminal, else silent. 2 or more: a line per check.
    max_updates : int
        Length of the bar (fits usually stop early, by patience).
    stream : file-like, default sys.stderr

    Returns
    -------
    reporter
        Has ``update(update, n_active)`` and ``close()``.
    """
    stream = sys.stderr if stream is None else stream
    if verbose >= 2:
        return _Lines(stream)
    if verbose >= 1 and getattr(stream, "isatty", lambda: False)():
        try:
            return _Bar(max_updates, stream)
        except ImportError:
            return _Lines(stream)
    return _Silent()

"""What a Bayesian fit may cost: identifiability and memory, checked before any work.

:func:`check_workload` refuses a fit with more free parameters per component
than rows (the data cannot identify it) or with kept draws that would not fit
in :data:`MEMORY_SHARE` of memory; :data:`LOG_LIKELIHOOD_BUDGET` bounds the
pointwise log-likelihood a fitted model keeps, and every other array sized
draws x rows (the posterior predictive replicate) follows the same budget.
"""

from __future__ import annotations

import os

from bayesgmm.parameters import Layout
from bayesgmm.scaling import COVARIANCE_TYPES

__all__ = [
    "LOG_LIKELIHOOD_BUDGET",
    "MEMORY_SHARE",
    "PREDICTIVE_BUDGET",
    "check_workload",
    "keeps_pointwise_log_likelihood",
    "parameters_per_component",
]


def parameters_per_component(n_features: int, covariance_type: str) -> int:
    """Free parameters of one component of the Bayesian model (its unconstrained length)."""
    return Layout(1, n_features, covariance_type).size

MEMORY_SHARE = 0.25
"""Share of physical memory the kept draws of a Bayesian fit may take (the rest is for copies)."""

_FALLBACK_MEMORY = 8 * 2**30
"""Physical memory assumed where the operating system does not report it."""


LOG_LIKELIHOOD_BUDGET = 2**22
"""Most pointwise log-likelihood values (draws x rows, float64) a fitted model keeps.

A fit whose ``chains * draws * n_samples`` exceeds it keeps no
``log_likelihood`` group: LOO, WAIC, anomaly scores and diagnostics stream
the log-likelihood from the draws in blocks of observations instead (exact;
see :mod:`bayesgmm.loo`).  2**22 values are 32 MiB, held in memory, written
to the model file and read back on load: small against the ~15 MB a default
fit at 1e5 rows otherwise stores (data and draws), and above every small data
set's matrix (Old Faithful's 4 x 1000 draws x 272 rows is 1.1e6 values), so
those keep the group that ArviZ's own functions (``az.loo``, ``az.compare``)
read.  Beyond it the matrix grows with the data (1e5 rows: 3.2 GB) and is
never built whole.
"""


PREDICTIVE_BUDGET = 2**23
"""Most numbers (draws x rows x features, float64: 64 MiB) of the posterior
predictive replicate :meth:`bayesgmm.BayesianGMM.sample_posterior_predictive`
keeps in ``idata_`` and saves; Old Faithful's 4000 draws x 272 rows x 2 are
2.2e6."""


def keeps_pointwise_log_likelihood(n_draws: int, n_samples: int) -> bool:
    """Whether a fit with ``n_draws`` draws in all and ``n_samples`` rows keeps the matrix.

    Examples
    --------
    >>> keeps_pointwise_log_likelihood(4000, 272), keeps_pointwise_log_likelihood(4000, 10**5)
    (True, False)
    """
    return n_draws * n_samples <= LOG_LIKELIHOOD_BUDGET


def _physical_memory() -> int:
    """Bytes of physical memory, or :data:`_FALLBACK_MEMORY` where unknown (e.g. Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf, or the names are unknown
        return _FALLBACK_MEMORY


def _most_features(covariance_type: str, n_samples: int) -> int:
    """Largest number of columns whose per-component parameters fit in ``n_samples``."""
    low, high = 0, n_samples
    while low < high:
        middle = (low + high + 1) // 2
        fits = parameters_per_component(middle, covariance_type) <= n_samples
        low, high = (middle, high) if fits else (low, middle - 1)
    return low


def _check_parameters_per_component(n_samples: int, n_features: int,
                                    covariance_type: str) -> None:
    """Refuse components with more free parameters than there are rows."""
    count = parameters_per_component(n_features, covariance_type)
    if count <= n_samples:
        return
    most = _most_features(covariance_type, n_samples)
    remedy = (f"Reduce the columns to at most {most} (e.g. sklearn.decomposition.PCA)"
              if most else "Collect more rows")
    if covariance_type == "full":
        most_diag = _most_features("diag", n_samples)
        remedy += (", or use covariance_type='diag'" if n_features <= most_diag
                   else f", or use covariance_type='diag' with at most {most_diag} columns"
                   if most_diag else "")
    raise ValueError(
        f"X has {n_samples} rows and {n_features} columns: with covariance_type="
        f"{covariance_type!r} each component has {count} free parameters, more "
        "than there are rows, so even one component holding every row is not identified by "
        "the data: the posterior would mostly restate the prior, and sampling it is slow "
        f"(minutes to hours). {remedy}."
    )


def _check_draws_memory(n_samples: int, n_features: int, n_components: int, draws: int,
                        chains: int) -> None:
    """Refuse draws whose kept values would not fit in :data:`MEMORY_SHARE` of memory."""
    # Kept per draw: weights, means, scales, then correlations, covariances and
    # correlation Cholesky factors (dense even for diag), and the pointwise
    # log-likelihood of every row only when the model keeps it (at most
    # LOG_LIKELIHOOD_BUDGET values in all; beyond it nothing grows with rows).
    kept_rows = n_samples if keeps_pointwise_log_likelihood(chains * draws, n_samples) else 0
    per_draw = n_components * (1 + 2 * n_features + 3 * n_features**2) + kept_rows
    needed = chains * draws * per_draw * 8
    physical = _physical_memory()
    allowed = MEMORY_SHARE * physical
    if needed <= allowed:
        return
    most = int(allowed // (chains * per_draw * 8))
    remedy = (f"Lower draws to at most {most} per chain (the default, 1000, is usually "
              "plenty), or use fewer chains" if most else
              "Use fewer columns" + (" or rows" if kept_rows else ""))
    raise ValueError(
        f"draws={draws} with chains={chains} would keep {chains * draws} posterior draws of "
        f"{per_draw} numbers each (parameters"
        f"{f' and the log-likelihood of {kept_rows} rows' if kept_rows else ''}): "
        f"about {needed / 2**30:.3g} GiB, more than {MEMORY_SHARE:.0%} of this machine's "
        f"{physical / 2**30:.3g} GiB of memory. {remedy}."
    )


def check_workload(n_samples: int, n_features: int, n_components: int, *, draws: int,
                   chains: int, covariance_type: str) -> None:
    """Refuse a Bayesian fit that cannot be estimated or would not fit in memory.

    Called before any work, with the shape of the checked data.  Two rules:

    * each component may have at most as many free parameters
      (:func:`parameters_per_component`) as ``X`` has rows: beyond that even
      one component holding every row is not identified by the data, and
      the sampler crawls through a huge posterior;
    * the draws kept by the fitted model (every parameter, and the pointwise
      log-likelihood when it stays within :data:`LOG_LIKELIHOOD_BUDGET`; 8
      bytes each) must fit in :data:`MEMORY_SHARE` of physical memory.

    Parameters
    ----------
    n_samples, n_features : int
        Shape of the checked data.
    n_components : int
    draws, chains : int
        Draws per chain and the number of chains (1 for ADVI).
    covariance_type : {"full", "diag"}

    Raises
    ------
    ValueError
        Naming the number at fault and the fix.

    Examples
    --------
    >>> check_workload(272, 2, 2, draws=1000, chains=4, covariance_type="full")
    >>> check_workload(10, 1000, 2, draws=1000, chains=4, covariance_type="full")
    Traceback (most recent call last):
    ...
    ValueError: X has 10 rows and 1000 columns: ... Reduce the columns to at most 3 ...
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                         f"got {covariance_type!r}.")
    _check_parameters_per_component(int(n_samples), int(n_features), covariance_type)
    _check_draws_memory(int(n_samples), int(n_features), int(n_components), int(draws),
                        int(chains))

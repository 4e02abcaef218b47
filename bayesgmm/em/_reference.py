"""``reference_em``: the EM fit every other part of bayesgmm starts from or scores with."""

from __future__ import annotations

import warnings

from sklearn.exceptions import ConvergenceWarning

from bayesgmm.em._estimator import GaussianMixtureEM

__all__ = ["REFERENCE_MAX_ITER", "REFERENCE_TOL", "reference_em"]

REFERENCE_TOL = 1e-6
REFERENCE_MAX_ITER = 1000


def reference_em(
    X,
    n_components: int,
    covariance_type: str = "full",
    *,
    n_init: int = 10,
    random_state=None,
    noise_volume: float | None = None,
    missing: str = "reject",
    sample_weight=None,
) -> GaussianMixtureEM:
    """EM fitted with bayesgmm's reference settings, for starts and criteria.

    Every EM solution that other code relies on (the start of every Bayesian
    fit, the BIC/AIC/ICL columns of ``compare_k`` and of the CLI's EM grid)
    comes from here, with a tight tolerance (``1e-6``) and up to 1000
    iterations.  A run that stops at the cap without meeting ``tol`` is still
    kept (``converged_`` says so): its ConvergenceWarning is silenced, since
    the callers use the solution as a start or a criterion, not as the answer.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_init : int, default=10
    random_state : int, numpy.random.Generator or None
    noise_volume : float, optional
        When given, EM also fits a uniform noise component of this
        hypervolume (in the units of ``X``).
    missing : {"reject", "marginalize"}, default="reject"
        As :class:`GaussianMixtureEM`'s: NaN refused, or marginalised.
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights, passed to :meth:`GaussianMixtureEM.fit`.

    Returns
    -------
    GaussianMixtureEM
        Fitted.
    """
    em = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, n_init=n_init, tol=REFERENCE_TOL,
        max_iter=REFERENCE_MAX_ITER, random_state=random_state,
        noise=noise_volume is not None, noise_volume=noise_volume, missing=missing,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        return em.fit(X, sample_weight=sample_weight)

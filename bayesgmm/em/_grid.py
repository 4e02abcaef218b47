"""EM over a grid of component numbers and covariance families, ranked by BIC."""

from __future__ import annotations

from bayesgmm.em._reference import reference_em

__all__ = ["em_grid"]


def em_grid(X, ks=range(1, 5), covariance_types=("full", "tied", "diag", "spherical"),
            random_state=0):
    """Fit EM for every K and covariance type; return table rows and the best fit by BIC.

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
    ks : iterable of int
    covariance_types : iterable of str
    random_state : int, numpy.random.Generator or None
        Seed of every fit (10 EM restarts each).

    Returns
    -------
    rows : list of dict
    best : bayesgmm.em.GaussianMixtureEM
        The fit with the lowest BIC.
    """
    rows, best, best_bic = [], None, float("inf")
    for covariance_type in covariance_types:
        for k in ks:
            em = reference_em(X, k, covariance_type, random_state=random_state)
            bic = em.bic(X)
            rows.append({"covariance": covariance_type, "K": k, "log_lik": em.score(X) * len(X),
                         "BIC": bic, "AIC": em.aic(X), "ICL": em.icl(X),
                         "iterations": em.n_iter_})
            if bic < best_bic:
                best, best_bic = em, bic
    return rows, best

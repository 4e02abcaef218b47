"""The checks of :class:`~bayesgmm.em.GaussianMixtureEM`'s constructor arguments.

They run at the start of ``fit`` (scikit-learn's contract: ``__init__`` only
stores), each message naming the argument, what it got and what it takes.
"""

from __future__ import annotations

import numpy as np

from bayesgmm._checks import MISSING_OPTIONS, check_n_components, check_number
from bayesgmm.em._covariance import get_family
from bayesgmm.em._initialization import INIT_METHODS
from bayesgmm.noise import check_noise_settings

__all__ = ["check_em_parameters"]


def check_em_parameters(estimator) -> None:
    """Refuse a :class:`~bayesgmm.em.GaussianMixtureEM` argument out of its range.

    Parameters
    ----------
    estimator : GaussianMixtureEM
        Read, not modified.

    Raises
    ------
    ValueError
        Naming the argument and its range.
    TypeError
        For a ``noise`` or ``warm_start`` that is not a bool.
    """
    check_n_components(estimator.n_components)
    get_family(estimator.covariance_type)
    check_number("tol", estimator.tol, low=0.0)
    check_number("reg_covar", estimator.reg_covar, low=0.0)
    check_number("max_iter", estimator.max_iter, low=0, integer=True)
    check_number("n_init", estimator.n_init, low=1, integer=True)
    check_number("chunk_size", estimator.chunk_size, low=1, integer=True)
    check_number("verbose", estimator.verbose, low=0, integer=True)
    check_number("verbose_interval", estimator.verbose_interval, low=1, integer=True)
    if not isinstance(estimator.warm_start, (bool, np.bool_)):
        raise TypeError(f"warm_start must be True or False, got {estimator.warm_start!r}.")
    if estimator.init_params not in INIT_METHODS:
        raise ValueError(
            f"init_params must be one of {INIT_METHODS}, got {estimator.init_params!r}."
        )
    if estimator.missing not in MISSING_OPTIONS:
        raise ValueError(
            f"missing must be one of {MISSING_OPTIONS}, got {estimator.missing!r}: 'reject' "
            "refuses NaN, 'marginalize' fits with them (assumed missing at random)."
        )
    check_noise_settings(estimator.noise, estimator.noise_volume)

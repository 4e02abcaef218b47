"""Classical EM for Gaussian mixtures: pure functions and a scikit-learn estimator.

The functions work on arrays and return new states; :class:`GaussianMixtureEM`
wires them into the scikit-learn estimator contract.  Values missing at random
(``missing="marginalize"``) go through :mod:`bayesgmm.em._missing`.
"""

from bayesgmm.em._algorithm import (
    EMRun,
    EMState,
    NoiseComponent,
    StepInfo,
    add_noise_component,
    em_step,
    expected_sufficient_statistics,
    log_prob_and_responsibilities,
    run_em,
    state_from_responsibilities,
    sufficient_statistics,
)
from bayesgmm.em._covariance import COVARIANCE_FAMILIES, CovarianceError, get_family
from bayesgmm.em._criteria import aic, bic, classification_entropy, icl, n_parameters
from bayesgmm.em._estimator import GaussianMixtureEM
from bayesgmm.em._grid import em_grid
from bayesgmm.em._initialization import (
    INIT_METHODS,
    initial_responsibilities,
    kmeans_plusplus,
)
from bayesgmm.em._missing import (
    MissingnessPatterns,
    conditional_expectation,
    missingness_patterns,
)
from bayesgmm.em._reference import reference_em

__all__ = [
    "COVARIANCE_FAMILIES",
    "CovarianceError",
    "EMRun",
    "EMState",
    "GaussianMixtureEM",
    "INIT_METHODS",
    "MissingnessPatterns",
    "NoiseComponent",
    "StepInfo",
    "add_noise_component",
    "aic",
    "bic",
    "classification_entropy",
    "conditional_expectation",
    "em_grid",
    "em_step",
    "expected_sufficient_statistics",
    "get_family",
    "icl",
    "initial_responsibilities",
    "kmeans_plusplus",
    "log_prob_and_responsibilities",
    "missingness_patterns",
    "n_parameters",
    "run_em",
    "reference_em",
    "state_from_responsibilities",
    "sufficient_statistics",
]

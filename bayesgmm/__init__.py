"""bayesgmm: Gaussian mixtures with honest uncertainty.

EM point estimates (:class:`GaussianMixtureEM`), Bayesian mixtures fitted with
PyMC/nutpie (:class:`BayesianGMM`), label switching resolved, membership
uncertainty, model comparison over K, and density/anomaly scores.

The Bayesian parts import PyMC lazily, so ``from bayesgmm import
GaussianMixtureEM`` stays fast.
"""

from __future__ import annotations

import importlib

from bayesgmm import datasets
from bayesgmm._version import __version__
from bayesgmm.em import GaussianMixtureEM

_LAZY = {
    "BayesianGMM": "bayesgmm.bayes",
    "load": "bayesgmm.bayes",
    "GMMPriors": "bayesgmm.priors",
    "build_model": "bayesgmm.model",
    "compare_k": "bayesgmm.selection",
    "KSelection": "bayesgmm.selection",
}

__all__ = ["GaussianMixtureEM", "datasets", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")

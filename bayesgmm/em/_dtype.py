"""float32 in, float32 out: EM computes in float64 and casts its results back.

scikit-learn's ``GaussianMixture`` keeps float32 input in float32: its fitted
``weights_``, ``means_``, ``covariances_``, ``precisions_`` and
``precisions_cholesky_``, and what ``score_samples``, ``predict_proba`` and
``sample`` return.  :class:`~bayesgmm.em.GaussianMixtureEM` returns the same
dtypes, but runs EM (and scores new rows) in float64 and casts the results
to float32.

Decision, measured (``make_blobs`` data stored as float32, then fitted as
float32 and as float64; ``random_state=0``):

* Computing in float32, as scikit-learn does, costs accuracy and sometimes
  the stopping rule (measured on scikit-learn 1.9.1's ``GaussianMixture``):
  with ``tol=1e-7`` (2000 x 2, 3 clusters) its float32 fit stopped after
  29 iterations against 38 in float64, with means off by 2.4e-3 and the
  mean log-likelihood by 1.2e-6; on the same kind of data
  shifted by 1000 (20000 x 5, 4 clusters) the means were off by 2.8e-3.  A
  change of the mean log-likelihood below ~1e-7 of its size is rounding
  noise in float32, so a small ``tol`` would stop EM on noise.
* Computing in float64 and casting back is as accurate as float32 can
  store: the float32 fit's attributes are the float64 fit's rounded to
  float32, bit for bit, with the same iterations and the same
  ``lower_bound_`` (``tests/em/test_dtype.py``).  On the two data sets
  above: means within 1.3e-7 (2.8e-5 after the shift by 1000, half a
  float32 spacing there), covariances within 5.6e-8, ``score_samples``
  within 9.2e-7 of the float64 fit's.  The cost is float64 memory for the
  standardised copy of the data, which EM makes anyway.

Outputs follow numpy's promotion, as scikit-learn's do: float32 when the
model was fitted on float32 and the new rows are float32, float64 when
either is float64.  ``lower_bound_``, ``score`` and the criteria are Python
floats.
"""

from __future__ import annotations

import numpy as np

__all__ = ["input_dtype", "output_dtype"]


def input_dtype(X) -> np.dtype:
    """float32 when every value of ``X`` is stored as float32, float64 otherwise.

    Parameters
    ----------
    X : array-like, DataFrame or Dask collection
        Lists and integer, bool or mixed columns count as float64.

    Returns
    -------
    numpy.dtype
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None:
        dtypes = [getattr(X, "dtype", np.float64)]
    is_float32 = len(dtypes) > 0 and all(dtype == np.float32 for dtype in dtypes)
    return np.dtype(np.float32 if is_float32 else np.float64)


def output_dtype(X, fitted_dtype: np.dtype) -> np.dtype:
    """Dtype of what a model fitted in ``fitted_dtype`` returns for rows ``X``.

    Parameters
    ----------
    X : array-like, DataFrame or Dask collection
    fitted_dtype : numpy.dtype
        The dtype of the fitted attributes.

    Returns
    -------
    numpy.dtype
        float32 only when both are float32.
    """
    return np.result_type(input_dtype(X), fitted_dtype)

"""The PyMC model as users extend it: data units for pm.set_data, and extend_model."""

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM, load
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.datasets import load_faithful
from bayesgmm.loo import _RefitWrapper
from bayesgmm.model import build_model, extended_model


def _mixture_log_likelihood(rows, weights, means, covariances):
    joint = np.column_stack([
        np.log(w) + multivariate_normal(m, c).logpdf(rows)
        for w, m, c in zip(weights, means, covariances)
    ])
    return logsumexp(joint, axis=1).sum()


def test_set_data_takes_rows_in_data_units():
    faithful = load_faithful()
    model = build_model(faithful, 2)
    centre, scale = faithful.mean().values, faithful.std(ddof=0).values
    np.testing.assert_allclose(model["data_centre"].get_value(), centre)
    np.testing.assert_allclose(model["data_scale"].get_value(), scale)
    point = model.initial_point()
    outputs = model.replace_rvs_by_values([model[name] for name in
                                           ("weights", "means", "covariances")])
    parameters = model.compile_fn(outputs, inputs=model.value_vars,
                                  on_unused_input="ignore")(point)
    new_rows = faithful.values[:15] + np.array([0.3, -2.0])
    with model:
        pm.set_data({"X": new_rows}, coords={"obs": np.arange(15)})
    likelihood = model.compile_logp(vars=[model["x"]])(point)
    # New rows are standardised with the training data's centre and scale,
    # so the model scores them exactly as it would have at fit time.
    expected = _mixture_log_likelihood((new_rows - centre) / scale, *parameters)
    assert likelihood == pytest.approx(expected, rel=1e-10)


def hierarchical_means(base):
    """Means drawn around a shared centre with a learned spread (non-centred)."""
    with base:
        centre = pm.Normal("means_centre", 0.0, 1.0, dims="feature")
        spread = pm.HalfNormal("means_spread", 1.0)
        offsets = pm.Normal("means_offset", 0.0, 1.0, dims=("component", "feature"))
    return pm.do(base, {"means": centre + spread * offsets})


def test_user_extended_model_end_to_end(tmp_path):
    rows = load_faithful().iloc[::3]  # 91 rows: PyMC's own sampler is the slow part
    model = BayesianGMM(2, engine="pymc", extend_model=hierarchical_means, draws=100,
                        tune=100, chains=2, random_state=0, progressbar=False)
    with diagnostics_reported():
        model.fit(rows)
    assert model.idata_.attrs["model_extension"] == "hierarchical_means"
    assert model.relabelling_.n_draws == 200
    # The two Faithful clusters: short eruptions and waits vs long ones.
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], [[2.0, 54.0], [4.3, 80.0]], rtol=0.1)
    assert model.membership_summary(rows)["prob"].shape == (91, 2)
    assert set(model.diagnose().table.index) >= {"rhat", "divergences"}
    # The extension's variables are kept and relabelled with the parameters: each
    # draw's means are still centre + spread * offset, component by component
    # (on the standardised scale, mapped back to data units).
    extension = model.idata_["extension"]
    assert set(extension.data_vars) == {"means_centre", "means_spread", "means_offset"}
    implied = extension["means_centre"] + extension["means_spread"] * extension["means_offset"]
    centre = xr.DataArray(rows.mean().values, dims="feature")
    implied = centre + xr.DataArray(rows.std(ddof=0).values, dims="feature") * implied
    np.testing.assert_allclose(implied.transpose("chain", "draw", "component", "feature"),
                               model.idata_.posterior["means"], rtol=1e-8)
    model.save(tmp_path / "extended.nc")
    loaded = load(tmp_path / "extended.nc")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    np.testing.assert_array_equal(loaded.idata_["extension"]["means_offset"],
                                  extension["means_offset"])
    assert loaded.extend_model is None
    # Refits of the loaded model would silently drop the extension: refused.
    with pytest.raises(ValueError, match="extend_model=hierarchical_means"):
        _RefitWrapper(loaded, rows.to_numpy())


@pytest.mark.parametrize("settings, error, message", [
    (dict(extend_model="hierarchical"), TypeError, "must be a function"),
    (dict(extend_model=hierarchical_means), ValueError, "engine='pymc'"),
    (dict(extend_model=hierarchical_means, engine="pymc", method="advi"), ValueError,
     "method='nuts'"),
])
def test_extension_settings_are_checked(settings, error, message):
    with pytest.raises(error, match=message):
        BayesianGMM(2, **settings).fit(load_faithful())


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_an_unchanged_extension_is_accepted_for_every_structure(covariance_type):
    base = build_model(load_faithful(), 2, covariance_type=covariance_type)
    assert extended_model(base, lambda model: model) is base
    one_feature = build_model(load_faithful()[["waiting"]], 2, covariance_type=covariance_type)
    assert extended_model(one_feature, lambda model: model) is one_feature


def test_extension_must_keep_the_parameters():
    base = build_model(load_faithful(), 2)
    with pytest.raises(TypeError, match="must return a pymc.Model"):
        extended_model(base, lambda model: None)
    with pytest.raises(ValueError, match=r"lacks \[.*'means'"):
        extended_model(base, lambda model: pm.Model())

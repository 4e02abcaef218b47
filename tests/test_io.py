"""Model files: integrity, stored settings, sizes, permissions and failed writes."""

import os
import resource
import stat
import time

import netCDF4
import numpy as np
import pytest
import xarray as xr

from bayesgmm import BayesianGMM, load
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.datasets import load_faithful
from bayesgmm.io import (
    CONTENT_DIGEST_ATTR,
    TEMP_SUFFIX,
    ModelFileError,
    ModelWriteError,
    content_digest,
    save_datatree,
)

# The largest seed a file can store: fitting with it proves it round-trips.
LARGEST_SEED = 2**63 - 1
FLOAT_ARRAYS = [("posterior", name) for name in
                ("weights", "means", "scales", "correlations", "covariances")] + [
    ("sample_stats", "lp"), ("log_likelihood", "x"), ("observed_data", "x")]


@pytest.fixture(scope="module")
def fitted():
    # A short run: these tests concern the file, not convergence.
    model = BayesianGMM(2, draws=200, tune=200, chains=2, random_state=LARGEST_SEED,
                        progressbar=False)
    with diagnostics_reported():
        return model.fit(load_faithful())


@pytest.fixture
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / "model.nc")


def edited(tree, edit):
    """A deep copy of ``tree`` changed by ``edit`` (saving it stamps a valid digest)."""
    copy = tree.copy(deep=True)
    edit(copy)
    return copy


def set_param(tree, **changes):
    import json

    params = json.loads(tree.attrs["params"])
    tree.attrs["params"] = json.dumps({**params, **changes})


def edit_in_place(path, group, name, change):
    """Change one stored array after saving, as an editor or a bad disk would."""
    with netCDF4.Dataset(path, "a") as dataset:
        dataset.set_auto_mask(False)
        variable = dataset[group][name]
        variable[...] = change(variable[...])


def test_saved_model_round_trips_with_a_content_digest(fitted, saved):
    with netCDF4.Dataset(saved) as dataset:
        assert len(dataset.getncattr(CONTENT_DIGEST_ATTR)) == 64
    loaded = load(saved)
    assert loaded.idata_.identical(fitted.idata_)  # the stamp belongs to the file only
    assert content_digest(loaded.idata_) == content_digest(fitted.idata_)
    assert CONTENT_DIGEST_ATTR not in fitted.idata_.attrs
    assert loaded.random_state == LARGEST_SEED
    X = load_faithful()
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize("group, name", FLOAT_ARRAYS)
def test_a_flipped_byte_in_any_stored_array_is_rejected(fitted, saved, group, name):
    raw = bytearray(saved.read_bytes())
    values = np.ascontiguousarray(fitted.idata_[group][name].values).tobytes()
    start = raw.find(values)
    assert start >= 0 and raw.find(values, start + 1) < 0, "array bytes not found once"
    raw[start + len(values) // 2] ^= 0x01
    saved.write_bytes(raw)
    with pytest.raises(ModelFileError, match="do not match the recorded content_sha256"):
        load(saved)


def test_a_flipped_byte_in_the_settings_is_rejected(saved):
    raw = saved.read_bytes()
    assert raw.count(b'"interval": 0.94') == 1
    saved.write_bytes(raw.replace(b'"interval": 0.94', b'"interval": 0.95'))
    # HDF5 checksums its headers, where attributes live: the file is unreadable.
    with pytest.raises(ModelFileError, match="not a readable bayesgmm model file"):
        load(saved)


def test_settings_edited_after_saving_are_rejected(saved):
    with netCDF4.Dataset(saved, "a") as dataset:
        params = dataset.getncattr("params")
        dataset.setncattr("params", params.replace('"interval": 0.94', '"interval": 0.95'))
    with pytest.raises(ModelFileError, match="content_sha256.*Re-fit or re-save the model"):
        load(saved)


@pytest.mark.parametrize("group, name, change", [
    ("posterior", "means", lambda v: v * 1000),
    ("posterior", "means", lambda v: np.full_like(v, np.nan)),
    ("posterior", "weights", lambda v: v / 2),
    ("posterior", "feature", lambda v: np.array(["a", "b"], dtype=object)),
    ("log_likelihood", "draw", lambda v: v + 1),
])
def test_arrays_changed_after_saving_are_rejected(saved, group, name, change):
    edit_in_place(saved, group, name, change)
    with pytest.raises(ModelFileError, match="content_sha256"):
        load(saved)


IMPOSSIBLE_VALUES = [
    (lambda t: t["posterior"]["means"].values.__setitem__((0, 3, 0, 0), np.nan),
     "posterior 'means' holds NaN or infinite draws"),
    (lambda t: t["posterior"]["weights"].values.__imul__(0.9), "weights of a draw sum to 0.9, not 1"),
    (lambda t: t["posterior"]["weights"].values.__setitem__((0, 0), [1.5, -0.5]),
     r"outside \[0, 1\]"),
    (lambda t: t["posterior"]["scales"].values.__setitem__((0, 0, 0, 0), -1.0),
     "scales must be > 0"),
    (lambda t: t["posterior"]["correlations"].values.__setitem__((0, 0, 0, 0, 1), 1.5),
     r"correlations lie outside \[-1, 1\]"),
    (lambda t: t["log_likelihood"]["x"].values.__setitem__((0, 0, 0), np.nan),
     "log-likelihood holds NaN"),
]


@pytest.mark.parametrize("edit, message", IMPOSSIBLE_VALUES)
def test_impossible_values_are_rejected_even_with_a_valid_digest(fitted, tmp_path, edit,
                                                                  message):
    path = save_datatree(edited(fitted.idata_, edit), tmp_path / "odd.nc")
    with pytest.raises(ModelFileError, match=f"{message}.*Re-fit or re-save the model"):
        load(path)


def test_models_saved_before_the_digest_still_load(fitted, tmp_path):
    legacy = tmp_path / "legacy.nc"
    fitted.idata_.to_netcdf(legacy, engine="netcdf4")  # what save wrote before the stamp
    assert load(legacy).idata_.identical(fitted.idata_)
    nan_draws = tmp_path / "nan.nc"
    edited(fitted.idata_, IMPOSSIBLE_VALUES[0][0]).to_netcdf(nan_draws, engine="netcdf4")
    with pytest.raises(ModelFileError, match="NaN or infinite draws"):
        load(nan_draws)  # instead of blank probabilities from predict


@pytest.mark.parametrize("changes, message", [
    ({"interval": 5}, "stored settings are invalid: interval must lie in"),
    ({"interval": "0.5"}, "stored settings are invalid: interval must lie in"),
    ({"random_state": -1}, "stored settings are invalid: random_state must be"),
    ({"n_components": 3}, "n_components=3 but the posterior has 2 components"),
    ({"covariance_type": "diag"}, "covariance_type='diag' in its settings but 'full'"),
    ({"method": "advi"}, "method='advi' in its settings but 'nuts'"),
])
def test_stored_settings_pass_the_constructor_checks(fitted, tmp_path, changes, message):
    path = save_datatree(edited(fitted.idata_, lambda t: set_param(t, **changes)),
                         tmp_path / "settings.nc")
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_diag_settings_must_match_zero_correlations(fitted, tmp_path):
    def to_diag(tree):
        set_param(tree, covariance_type="diag")
        tree.attrs["covariance_type"] = "diag"

    path = save_datatree(edited(fitted.idata_, to_diag), tmp_path / "diag.nc")
    with pytest.raises(ModelFileError, match="non-zero correlations"):
        load(path)


def test_tied_settings_must_match_repeated_scales(fitted, tmp_path):
    def to_tied(tree):
        set_param(tree, covariance_type="tied")
        tree.attrs["covariance_type"] = "tied"

    path = save_datatree(edited(fitted.idata_, to_tied), tmp_path / "tied.nc")
    with pytest.raises(ModelFileError, match="its scales differ across components"):
        load(path)


@pytest.mark.parametrize("settings, message", [
    ({"interval": "0.5"}, r"interval must lie in \(0, 1\) and be a real number, e.g. interval=0.94"),
    ({"interval": True}, "interval must lie in"),
    ({"interval": float("nan")}, "interval must lie in"),
    ({"target_accept": None}, "target_accept must lie in .* e.g. target_accept=0.9"),
    ({"random_state": "abc"}, r"random_state must be None, an integer in \[0, 2\*\*63\)"),
    ({"random_state": -1}, "random_state must be None"),
    ({"random_state": 2**64}, "stores it as a 64-bit integer"),
    ({"random_state": True}, "random_state must be None"),
    ({"progressbar": "yes"}, "progressbar must be True or False"),
    ({"cores": 1.5}, "cores must be an integer >= 1, got 1.5; e.g. cores=4"),
    ({"draws": "100"}, "draws must be an integer >= 1, got '100'; e.g. draws=1000"),
    ({"covariance_type": ["full"]}, "covariance_type must be one of .* e.g. covariance_type="),
])
def test_every_setting_is_checked_before_sampling(settings, message):
    with pytest.raises(ValueError, match=message):
        BayesianGMM(2, **settings).fit(load_faithful())


def test_random_state_may_be_a_generator_or_random_state():
    for random_state in (np.random.default_rng(0), np.random.RandomState(0), None, np.int64(3)):
        BayesianGMM(2, random_state=random_state)._check_settings()


@pytest.mark.parametrize("group", ["posterior", "sample_stats", "log_likelihood",
                                   "observed_data"])
def test_a_file_missing_a_group_is_a_model_file_error(fitted, tmp_path, group):
    path = tmp_path / "partial.nc"
    groups = {node.path: node.to_dataset(inherit=False) for node in fitted.idata_.subtree
              if node.name != group}
    partial = xr.DataTree.from_dict(groups)
    partial.attrs = dict(fitted.idata_.attrs)
    partial.to_netcdf(path, engine="netcdf4")
    expected = {"posterior": "not a bayesgmm model",
                # Its root attribute says the group was kept, so its absence is damage.
                "log_likelihood": "pointwise_log_likelihood_stored=1 but it lacks a "
                                  "'log_likelihood' group"}.get(group, f"no '{group}' group")
    with pytest.raises(ModelFileError, match=expected):
        load(path)
    with pytest.raises(ModelFileError, match=expected):
        BayesianGMM.from_datatree(partial)


def test_a_garbled_format_version_is_a_model_file_error(fitted, tmp_path):
    path = tmp_path / "version.nc"
    garbled = fitted.idata_.copy()
    garbled.attrs["bayesgmm_format_version"] = "abc"
    garbled.to_netcdf(path, engine="netcdf4")
    with pytest.raises(ModelFileError, match="format version 'abc', not a whole number"):
        load(path)


def test_a_small_file_declaring_huge_arrays_is_refused_before_reading(fitted, tmp_path,
                                                                      monkeypatch):
    n_obs = 20_000  # 2 chains x 200 draws x 20,000 points = 64 MB of log-likelihood
    tree = fitted.idata_.copy()
    zeros = dict(coords={"obs": np.arange(n_obs)})
    tree["log_likelihood"] = xr.Dataset(
        {"x": (("chain", "draw", "obs"), np.zeros((2, 200, n_obs)))},
        coords={**zeros["coords"], "chain": [0, 1], "draw": np.arange(200)})
    tree["observed_data"] = xr.Dataset(
        {"x": (("obs", "feature"), np.zeros((n_obs, 2)))},
        coords={**zeros["coords"], "feature": ["eruptions", "waiting"]})
    path = tmp_path / "bomb.nc"
    compressed = {"zlib": True, "complevel": 9}
    tree.to_netcdf(path, engine="netcdf4", encoding={"/log_likelihood": {"x": compressed},
                                                     "/observed_data": {"x": compressed}})
    assert path.stat().st_size < 2 * 2**20

    def refuse(*args, **kwargs):
        raise AssertionError("the arrays were read before the sizes were checked")

    monkeypatch.setattr(xr, "open_datatree", refuse)
    with pytest.raises(ModelFileError, match=r"bomb.nc: .*declares 6[0-9] MiB of arrays in a 0\.[0-9] MiB file"):
        load(path)


def test_saved_files_honour_the_umask(fitted, tmp_path):
    previous = os.umask(0o027)
    try:
        path = fitted.save(tmp_path / "private.nc")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.umask(0o022)
        fitted.save(path, overwrite=True)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(previous)


def test_a_failed_write_is_an_os_error_and_leaves_nothing_behind(fitted, tmp_path):
    target = tmp_path / "model.nc"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # `ulimit -f` stands in for a full disk: writes past 20 kB fail (EFBIG).
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        with pytest.raises(ModelWriteError, match=f"could not write {target}: disk full or no "
                                                  "permission?") as caught:
            fitted.save(target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert isinstance(caught.value, OSError)  # the CLI reports it in one line, exit 2
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_are_named_and_stale_ones_removed(fitted, tmp_path, monkeypatch):
    old = time.time() - 2 * 3600
    stale = tmp_path / f".model.nc.k1ll3d{TEMP_SUFFIX}"
    fresh = tmp_path / f".model.nc.running{TEMP_SUFFIX}"
    other = tmp_path / f".other.nc.k1ll3d{TEMP_SUFFIX}"
    for leftover in (stale, fresh, other):
        leftover.write_bytes(b"partial")
    for leftover in (stale, other):
        os.utime(leftover, (old, old))
    moved = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (moved.append(source),
                                                               replace(source, target)))
    fitted.save(tmp_path / "model.nc")
    assert os.path.basename(moved[0]).startswith(".model.nc.")
    assert moved[0].endswith(TEMP_SUFFIX)
    assert not stale.exists()  # a killed save's leftover, over an hour old
    assert fresh.exists() and other.exists()  # maybe a save in progress; another target

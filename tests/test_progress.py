"""Progress bars: shown when asked for, silent otherwise, and warning-free in Jupyter."""

import json

import nbformat
import numpy as np
import pytest
import rich.console
from nbclient import NotebookClient

from bayesgmm._progress import _showing, progress
from bayesgmm.advi import fit_advi
from bayesgmm.minibatch_advi import fit_minibatch_advi
from bayesgmm.parameters import Layout
from bayesgmm.priors import GMMPriors, ResolvedPriors
from bayesgmm.relabel import relabel_draws, relabel_parameters
from bayesgmm.scaling import model_scale
from tests.test_relabel import TRUE_MEANS, jittered_draws, pivot_of


@pytest.fixture
def terminal(monkeypatch):
    """Standard error counts as a terminal, so rich draws its live display there."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")


@pytest.fixture
def jupyter(monkeypatch):
    """rich sees a Jupyter kernel; the IPython displays made are recorded, updates included."""
    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    shown = []

    class Handle:
        def __init__(self, bundle):
            self.bundles = [bundle]

        def update(self, bundle, raw):
            assert raw
            self.bundles.append(bundle)

    def display(bundle, raw, display_id):
        assert raw and display_id
        shown.append(Handle(bundle))
        return shown[-1]

    monkeypatch.setattr("IPython.display.display", display)
    return shown


@pytest.fixture
def gaussian_block():
    priors = ResolvedPriors(np.ones(1), np.zeros(2), np.ones(2), np.ones(2), "lognormal", 2.0)
    from bayesgmm._kernel import pack_block

    return pack_block(np.empty((0, 2)), priors, 1, "diag")


def test_a_bar_shows_its_description_and_count(terminal, capsys):
    with progress(3, "counting sheep") as bar:
        for _ in range(3):
            bar.advance()
    captured = capsys.readouterr()
    assert "counting sheep" in captured.err and "3/3" in captured.err
    assert captured.out == ""  # standard output stays clean for piped results
    assert not _showing


@pytest.mark.parametrize("total", [3, None])
def test_a_disabled_bar_prints_nothing(terminal, jupyter, capsys, total):
    with progress(total, "counting sheep", enabled=False) as bar:
        bar.advance()
        bar.describe("still counting")
    assert capsys.readouterr() == ("", "")
    assert jupyter == []


def test_nested_bars_share_one_display_and_the_inner_row_goes(jupyter, monkeypatch):
    monkeypatch.setattr("bayesgmm._progress.JUPYTER_REFRESH_SECONDS", 0.0)  # draw every change
    with progress(2, "outer") as outer:
        with progress(None, "inner") as inner:
            inner.advance()
        outer.advance()
        with progress(None, "second inner"):
            pass
    assert len(jupyter) == 1
    final = jupyter[0].bundles[-1]["text/plain"]
    assert "outer" in final and "inner" not in final
    assert any("inner" in bundle["text/plain"] for bundle in jupyter[0].bundles)


def test_jupyter_bar_is_one_updated_display_with_html_and_no_warning(jupyter, capsys):
    # pytest turns warnings into errors: rich's 'install "ipywidgets"' would fail here.
    with progress(4, "fitting") as bar:
        for _ in range(4):
            bar.advance()
    assert len(jupyter) == 1
    final = jupyter[0].bundles[-1]
    assert "fitting" in final["text/plain"] and "4/4" in final["text/plain"]
    assert final["text/html"].startswith("<pre") and "4/4" in final["text/html"]
    assert capsys.readouterr() == ("", "")


def test_advi_shows_its_iterations_and_the_bar_changes_nothing(terminal, capsys,
                                                                gaussian_block):
    silent = fit_advi(np.zeros(4), gaussian_block, np.random.default_rng(0), n_iter=1200)
    assert capsys.readouterr() == ("", "")
    shown = fit_advi(np.zeros(4), gaussian_block, np.random.default_rng(0), n_iter=1200,
                     progressbar=True)
    captured = capsys.readouterr()
    assert "ADVI (full-rank)" in captured.err and "1200/1200" in captured.err
    np.testing.assert_array_equal(shown.mean, silent.mean)
    np.testing.assert_array_equal(shown.chol, silent.chol)


def test_minibatch_advi_shows_its_steps(terminal, capsys):
    X = np.random.default_rng(0).normal(size=(400, 2))
    scaled = model_scale(X, GMMPriors(), 1, "diag")
    start = np.zeros(Layout(1, 2, "diag").size)
    arguments = (start, scaled.values, scaled.resolved, 1, "diag")
    fit_minibatch_advi(*arguments, np.random.default_rng(1), batch_size=100, n_iter=600)
    assert capsys.readouterr() == ("", "")
    fit_minibatch_advi(*arguments, np.random.default_rng(1), batch_size=100, n_iter=600,
                       progressbar=True)
    err = capsys.readouterr().err
    assert "ADVI (full-rank) on batches" in err and "600/600" in err


def test_stephens_relabelling_shows_its_iterations(terminal, capsys):
    rng = np.random.default_rng(3)
    aligned, shuffled, _ = jittered_draws(rng, n_draws=100)
    X = rng.normal(size=(150, 2)) + TRUE_MEANS[rng.integers(3, size=150)]
    silent, quiet_result = relabel_draws(X, shuffled, pivot_of(aligned))
    assert capsys.readouterr() == ("", "")
    shown, result = relabel_draws(X, shuffled, pivot_of(aligned), progressbar=True)
    err = capsys.readouterr().err
    assert "Stephens relabelling, 100 draws" in err and "iteration 1: rows" in err
    np.testing.assert_array_equal(result.permutations, quiet_result.permutations)
    np.testing.assert_array_equal(relabel_parameters(shuffled, result.permutations).means,
                                  shown.means)


NOTEBOOK_CELLS = [
    # Every warning shows (as a stream output, which the test refuses).
    "import warnings\nwarnings.simplefilter('always')",
    "import numpy as np\n"
    "from bayesgmm._kernel import pack_block\n"
    "from bayesgmm._progress import progress\n"
    "from bayesgmm.advi import fit_advi\n"
    "from bayesgmm.priors import ResolvedPriors",
    "with progress(3, 'counting sheep') as bar:\n"
    "    for _ in range(3):\n"
    "        bar.advance()",
    "priors = ResolvedPriors(np.ones(1), np.zeros(2), np.ones(2), np.ones(2), 'lognormal', 2.0)\n"
    "block = pack_block(np.empty((0, 2)), priors, 1, 'diag')\n"
    "result = fit_advi(np.zeros(4), block, np.random.default_rng(0), n_iter=1000,\n"
    "                  progressbar=True)",
]


def test_a_real_jupyter_kernel_shows_the_bars_without_warnings(tmp_path):
    """No ipywidgets in the environment, and still a bar and no warning (or error)."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS])
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.get("outputs", []) for cell in notebook.cells]
    # rich's live display would print 'UserWarning: install "ipywidgets"' (as a
    # display of its own while live): each bar cell has exactly its bar.
    assert [len(cell_outputs) for cell_outputs in outputs] == [0, 0, 1, 1], json.dumps(outputs)
    assert "Warning" not in json.dumps(outputs)
    assert outputs[2][0]["output_type"] == outputs[3][0]["output_type"] == "display_data"
    bar, advi = outputs[2][0]["data"], outputs[3][0]["data"]
    assert "counting sheep" in bar["text/plain"] and "3/3" in bar["text/plain"]
    assert "ADVI (full-rank)" in advi["text/plain"] and "1000/1000" in advi["text/html"]


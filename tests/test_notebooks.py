"""The notebooks execute from top to bottom (small settings: BAYESGMM_FAST=1)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_all_five_notebooks_exist():
    names = [path.stem for path in NOTEBOOKS]
    assert names == ["01_quickstart_faithful", "02_choosing_k_galaxies",
                     "03_uncertainty_aware_clustering", "04_density_and_anomalies",
                     "05_large_data"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESGMM_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    assert os.environ["BAYESGMM_FAST"] == "1"

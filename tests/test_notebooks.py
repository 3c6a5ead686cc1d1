"""The notebooks run headless (nbclient) top to bottom against smoke results made in a temporary folder.

Each notebook's cell tagged ``parameters`` is replaced by the test's values (papermill's convention), so
the notebooks themselves keep the defaults a user wants (the committed results, the shipped model).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from tests.test_figures import SMOKE_TRIALS, smoke_study, write_smoke_results

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]  # each notebook runs in a Jupyter kernel of its own


def run(name: str, parameters: str) -> str:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters``; return its text and Markdown outputs, joined."""
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    cells = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters'"
    cells[0].source = parameters
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts += [data.get("text/markdown", ""), "<image>" if "image/png" in data else ""]
    return "\n".join(texts)


def test_quickstart_upscales_and_scores_a_bundled_image(tmp_path):
    out = tmp_path / "sr"
    text = run("quickstart", f'MODEL = "weights/tiny/spasemsr"\nIMAGE = "kodim19"\nSTEPS = 2\nCROP = 128\n'
                             f'METRICS = ["psnr_y", "lr_consistency"]\nOUT = "{out}"')
    with Image.open(out / "kodim19_x4.png") as image:
        assert image.size == (128, 128)
    assert "LR (3, 32, 32) -> HR (3, 128, 128)" in text
    assert "psnr_y (higher is better): bicubic" in text and "lr_consistency" in text and "<image>" in text


def test_pd_sweep_loads_a_study_plots_its_front_and_picks_a_preset(tmp_path):
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = smoke_study(storage, "smoke")
    best = max(study.best_trials, key=lambda t: t.values[0])
    text = run("pd_sweep", f'STORAGE = "{storage}"\nSTUDY = "smoke"\n'
                           f'EXPERIMENT = "{REPO / "experiments" / "pd_sweep.yaml"}"\nPRESET = "fidelity"')
    assert f"smoke: {SMOKE_TRIALS} complete of {SMOKE_TRIALS + 1} trials" in text
    assert f"fidelity: trial {best.number}, psnr_y={best.values[0]:.4g}" in text
    assert f"w_spa={best.params['w_spa']}" in text and "color_fix=none backproject=0" in text
    assert "<image>" in text


def test_ablation_loads_the_table_and_plots_it(tmp_path):
    results = write_smoke_results(tmp_path / "results")
    text = run("ablation", f'RESULTS = "{results}"')
    assert "| fusion = sum |" in text and "<image>" in text
    assert "psnr_y: largest gain from 'fusion = sum' (+0.5)" in text


@pytest.mark.parametrize("name", ["quickstart", "pd_sweep", "ablation"])
def test_committed_notebooks_carry_no_outputs(name):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in nb.cells
               if cell.cell_type == "code")

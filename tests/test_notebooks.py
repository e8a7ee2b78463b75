"""Every notebook in docs/notebooks runs top to bottom on the shipped agent, with small settings.

The notebooks read ``MAZEINTERP_QUICK=1`` and shrink their samples; what they show
is not checked here, only that every cell runs without an error, so they never rot.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "docs" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STORIES = ("explore", "cheese_channels", "steering", "ablation", "behaviour", "explorer")


def test_every_story_has_a_notebook():
    stems = [p.stem for p in NOTEBOOKS]
    for story in STORIES:
        assert any(stem.endswith(story) for stem in stems), f"no notebook for {story!r} in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: cell {i} has stored output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_as_jupyterlab_saves_it(path):
    """Opening a notebook in JupyterLab writes the kernel's metadata and nbformat's layout; both are stored
    already, so its autosave leaves the file as it is (tests/viz/test_explorer_browser.py saves one in a browser)."""
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import get_kernel_dict

    text = path.read_text()
    notebook = nbformat.reads(text, as_version=4)
    assert text == nbformat.writes(notebook) + "\n", f"{path.name} is not in nbformat's layout"
    assert notebook.metadata.kernelspec == {"display_name": get_kernel_dict()["display_name"], "language": "python",
                                            "name": "python3"}
    stored = dict(notebook.metadata.language_info)
    kernel = dict(IPythonKernel.language_info)
    # the one field a machine's kernel writes of its own is the Python version; the stored one is the project's
    assert stored.pop("version").rsplit(".", 1)[0] == kernel.pop("version").rsplit(".", 1)[0]
    assert stored == kernel, f"{path.name}: language_info differs from the kernel's"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MAZEINTERP_QUICK", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    printed = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert printed, f"{path.name} produced no output at all"
    streams = "".join(out.get("text", "") for out in printed if out.get("output_type") == "stream")
    assert "TqdmWarning" not in streams and "IProgress not found" not in streams
    assert "Gym has been unmaintained" not in streams

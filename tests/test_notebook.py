"""The quickstart notebook runs top to bottom (real model, real data, 20 steps)."""

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.mark.real
def test_quickstart_notebook_executes(tmp_path, shared_data):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["QUICKSTART_OUT"] = str(tmp_path / "quickstart")
    os.environ["SBERT_TRIPLET_DATA"] = str(shared_data)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert (tmp_path / "quickstart" / "metrics.json").is_file()

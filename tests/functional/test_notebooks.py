"""Progress bars in a real notebook kernel (nbclient + ipykernel): no tqdm warning, and a saved notebook shows the final count."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
if importlib.util.find_spec("ipykernel") is None:  # not imported here: this process is no kernel
    pytest.skip("ipykernel is not installed", allow_module_level=True)


def run_push_in_a_notebook(tmp_path, bucket, *, widgets: bool) -> list[dict]:
    """Push a folder of two files from a notebook cell (progress shown by default there); the cell's stored outputs."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 3000)
    (folder / "b.bin").write_bytes(b"b" * 5000)
    hide = "" if widgets else "import sys; sys.modules['ipywidgets'] = None  # as if it were not installed\n"
    code = hide + textwrap.dedent(
        f"""
        import s3bp
        s3bp.map_base_directory_to_bucket({str(folder)!r}, {bucket!r})
        report = s3bp.push({str(folder)!r})
        print(len(report.uploaded), "uploaded")
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [dict(o) for o in nb.cells[0].outputs]


def test_without_ipywidgets_text_bars_and_no_warning(tmp_path, bucket):
    outputs = run_push_in_a_notebook(tmp_path, bucket, widgets=False)
    text = json.dumps(outputs)
    assert "IProgress" not in text and "TqdmWarning" not in text and "Warning" not in text
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "100%" in stderr and "2/2 files" in stderr  # a text bar, ending at the full count
    assert "2 uploaded" in "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")


def test_with_ipywidgets_the_saved_text_shows_the_final_count(tmp_path, bucket):
    pytest.importorskip("ipywidgets")
    outputs = run_push_in_a_notebook(tmp_path, bucket, widgets=True)
    assert "Warning" not in json.dumps(outputs)
    shown = [o for o in outputs if o["output_type"] == "display_data"]
    assert len(shown) == 1 and "application/vnd.jupyter.widget-view+json" in shown[0]["data"]
    saved = shown[0]["data"]["text/plain"]  # what a notebook viewer without widget state shows
    assert "100%" in saved and "2/2 files" in saved and "0%" not in saved.replace("100%", "")

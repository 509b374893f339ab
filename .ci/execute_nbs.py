#!/usr/bin/env python
"""Run notebooks top to bottom in a Jupyter kernel, as a learner does, except the cells `nbdev_test` skips (`#| slow`,
`#| eval: false`, the export call), which keep their stored outputs; store the new outputs in the notebooks, so
that what a notebook shows comes from the code as it is.

    python .ci/execute_nbs.py nbs/07_inference.ipynb [more notebooks]    # then: nbdev_clean
    python .ci/execute_nbs.py --slow nbs/02_single_box.ipynb             # the `#| slow` cells too, but downloads

Each notebook runs in its folder with IN_TEST=1 (one torch thread, as under nbdev_test); a failing cell stops it,
and it is not written."""
import os, re, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

os.environ['IN_TEST'] = '1'
os.environ['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'   # pictures in the outputs, as in Jupyter
_SLOW = '--slow' in sys.argv
_SKIP = re.compile(r'^#\|\s*(eval:\s*false)' if _SLOW else r'^#\|\s*(slow\b|eval:\s*false)', re.M)

def _skip(cell)->bool: # not run: markdown, the export call, cells nbdev_test skips, and (with --slow) downloads, which fail offline
    return (cell.cell_type != 'code' or bool(_SKIP.search(cell.source)) or 'nbdev_export'+'(' in cell.source
            or (_SLOW and 'untar_data(' in cell.source))

class _Client(NotebookClient):
    "A `NotebookClient` that leaves the skipped cells as they are"
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if _skip(cell): return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

def _strip_widgets(nb): # the explorers' widget state and views: a re-run brings the live widget back, the text stays
    nb.metadata.pop('widgets', None)
    for c in nb.cells:
        for o in c.get('outputs', []): o.get('data', {}).pop('application/vnd.jupyter.widget-view+json', None)

def execute(fn:Path)->bool:
    nb = nbformat.read(fn, as_version=4)
    t = time.time()
    try: _Client(nb, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(fn.parent)}}).execute()
    except Exception as e:
        print(f'{fn}: FAILED, not written\n{str(e)[-3000:]}'); return False
    _strip_widgets(nb)
    nbformat.write(nb, fn)
    print(f'{fn}: ran in {time.time()-t:.0f}s', flush=True)
    return True

if __name__ == '__main__':
    ok = [execute(Path(f).resolve()) for f in sys.argv[1:] if f != '--slow']
    sys.exit(0 if all(ok) else 1)

#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb without quarto (nbdev_readme needs quarto, which can't be installed here).

    python .ci/render_readme.py           # write README.md
    python .ci/render_readme.py --check   # exit 1 if README.md is not what index.ipynb renders to

Markdown cells are copied as they are; code cells become ```python blocks followed by their text output.
Cells marked `#| hide` are left out, and nbdev directives (`#| ...`) are dropped from the code shown."""
import json, sys, re
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb_path, out_path = root/'nbs'/'index.ipynb', root/'README.md'

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def _text_out(c):
    res = []
    for o in c.get('outputs', []):
        if o['output_type'] == 'stream': res.append(''.join(o['text']))
        elif 'text/markdown' in o.get('data', {}): res.append(('MD', ''.join(o['data']['text/markdown'])))
        elif 'text/plain' in o.get('data', {}): res.append(''.join(o['data']['text/plain']))
    return res

def render(nb):
    parts = ['<!-- Generated from nbs/index.ipynb by `python .ci/render_readme.py`: edit the notebook, not this file. -->']
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'markdown': parts.append(src.strip()); continue
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*hide\s*$', src, re.M): continue
        echo = not re.search(r'^#\|\s*echo:\s*false', src, re.M)
        code = '\n'.join(l for l in src.split('\n') if not l.startswith('#|')).strip()
        if echo and code: parts.append(f'```python\n{code}\n```')
        for o in _text_out(c):
            parts.append(o[1].strip() if isinstance(o, tuple) else f'```\n{o.rstrip()}\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    txt = render(json.loads(nb_path.read_text(encoding='utf-8')))
    if '--check' in sys.argv:
        if not out_path.exists() or out_path.read_text(encoding='utf-8') != txt:
            sys.exit('README.md is out of date with nbs/index.ipynb: run `python .ci/render_readme.py` and commit it.')
        print('README.md is up to date with nbs/index.ipynb')
    else:
        out_path.write_text(txt, encoding='utf-8'); print(f'wrote {out_path}')

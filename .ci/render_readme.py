#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb without quarto (nbdev_readme needs quarto, which can't be installed here).

    python .ci/render_readme.py           # write README.md
    python .ci/render_readme.py --check   # exit 1 if README.md is not what index.ipynb renders to

Markdown cells are copied as they are; code cells become ```python blocks followed by their text output.
Cells marked `#| hide` are left out, and nbdev directives (`#| ...`) are dropped from the code shown.

Pictures: a code cell of any notebook whose source has a line `# picture in the README: NAME.png` gives its last PNG
output to `nbs/images/NAME.png`, which the README shows; `--check` also checks that those files are up to date."""
import json, sys, re, base64
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

_PIC = re.compile(r'^# picture in the README: (\S+\.png)\s*$', re.M)

def pictures(): # {path: PNG bytes} from the notebooks' marked cells
    res = {}
    for f in sorted((root/'nbs').rglob('*.ipynb')):
        for c in json.loads(f.read_text(encoding='utf-8'))['cells']:
            m = _PIC.search(_src(c)) if c['cell_type'] == 'code' else None
            if not m: continue
            pngs = [o['data']['image/png'] for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
            if not pngs: sys.exit(f'{f.name}: the cell marked for {m.group(1)} has no picture: run the notebook')
            png = pngs[-1] if isinstance(pngs[-1], str) else ''.join(pngs[-1])
            res[root/'nbs'/'images'/m.group(1)] = base64.b64decode(png)
    return res

def render(nb):
    parts = ['<!-- Generated from nbs/index.ipynb by `python .ci/render_readme.py`: edit the notebook, not this file. -->']
    for c in nb['cells']:
        src = _src(c)
        if c['cell_type'] == 'markdown': parts.append(src.strip()); continue
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*hide\s*$', src, re.M): continue
        echo = not re.search(r'^#\|\s*echo:\s*false', src, re.M)
        code = '\n'.join(l for l in src.split('\n') if not l.startswith('#|') and not _PIC.match(l)).strip()
        if echo and code: parts.append(f'```python\n{code}\n```')
        for o in _text_out(c):
            parts.append(o[1].strip() if isinstance(o, tuple) else f'```\n{o.rstrip()}\n```')
    return '\n\n'.join(parts) + '\n'

# Pictures of the README that no notebook makes: the site's home page (`python .ci/build_site.py --screenshot nbs/images/site.png`),
# a lesson's page on the site, and the error report of a run of `ssd-train --recipe bccd` (shown by nbs/library/34_results)
SCREENSHOTS = {'nbs/images/site.png', 'nbs/images/site_lesson.png', 'nbs/images/bccd_errors.png'}

if __name__ == '__main__':
    txt, pics = render(json.loads(nb_path.read_text(encoding='utf-8'))), pictures()
    for link in re.findall(r'!\[[^\]]*\]\((nbs/images/[^)]+)\)', txt):
        if root/link not in pics and link not in SCREENSHOTS: sys.exit(f'README.md shows {link}, which no notebook cell is marked to make')
    if '--check' in sys.argv:
        if not out_path.exists() or out_path.read_text(encoding='utf-8') != txt:
            sys.exit('README.md is out of date with nbs/index.ipynb: run `python .ci/render_readme.py` and commit it.')
        stale = [str(p.relative_to(root)) for p,b in pics.items() if not p.exists() or p.read_bytes() != b]
        if stale: sys.exit(f'README pictures out of date with the notebooks: {", ".join(stale)}: run `python .ci/render_readme.py`')
        print('README.md and its pictures are up to date with the notebooks')
    else:
        out_path.write_text(txt, encoding='utf-8'); print(f'wrote {out_path}')
        for p,b in pics.items(): p.parent.mkdir(exist_ok=True); p.write_bytes(b); print(f'wrote {p.relative_to(root)}')

"""Prose that cannot go stale, and pages with nothing of the machine that ran them.

- Every decimal number in a lesson's markdown (`nbs/course/`) is one that the notebook printed (in its stored
  outputs, to the decimals the prose gives) or a constant of its code.
- No notebook, docstring or comment narrates the project's history (rounds, issues, earlier versions, "until now").
- No stored output names a path of the machine that ran it, a warning or stderr: the site shows outputs as they are."""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted((ROOT/'nbs').rglob('*.ipynb'))
LESSONS = sorted((ROOT/'nbs'/'course').glob('*.ipynb'))

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']
def _cells(nb): return json.loads(nb.read_text(encoding='utf-8'))['cells']

def _out_text(o)->str:
    "The text of a stored output: a stream, a result's plain text or html, an error"
    if o.get('output_type') == 'stream': return ''.join(o['text'])
    if o.get('output_type') == 'error': return '\n'.join(o.get('traceback', []))
    d = o.get('data', {})
    return ''.join(''.join(d[k]) for k in ('text/plain', 'text/html', 'text/markdown') if k in d)

_NUM = re.compile(r'(?<![\w.])-?\d+\.\d+(?![\w.]*\d)')

def _prose(md:str)->str: # markdown without code spans, code blocks, links' targets and pictures
    md = re.sub(r'```.*?```', ' ', md, flags=re.S)
    md = re.sub(r'`[^`]*`', ' ', md)
    md = re.sub(r'\]\([^)]*\)', ']', md)
    return re.sub(r'<[^>]+>', ' ', md)

def _matches(x:str, printed:set)->bool:
    "Whether `x` (say 0.90) is a number printed (0.90, or 0.902 rounded to the decimals `x` gives)"
    d = len(x.split('.')[1])
    return x in printed or any(abs(round(float(p), d) - float(x)) < 1e-9 for p in printed if len(p.split('.')[-1]) >= d)

@pytest.mark.parametrize('nb', LESSONS, ids=lambda p: p.stem)
def test_numbers_in_a_lessons_prose_are_printed(nb):
    cells = _cells(nb)
    printed = {m for c in cells if c['cell_type'] == 'code' for o in c.get('outputs', []) for m in _NUM.findall(_out_text(o))}
    printed |= {m for c in cells if c['cell_type'] == 'code' for m in _NUM.findall(_src(c))}   # constants of its code
    stale = [x for c in cells if c['cell_type'] == 'markdown' for x in _NUM.findall(_prose(_src(c))) if not _matches(x, printed)]
    assert not stale, f'{nb.name}: numbers in the prose that no cell printed: {stale}'

_HISTORY = re.compile(r"""\b(?:(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|previous|this|that|next)\s+round
    |rounds?\s+of\s+(?:the|this)\s+project|issue\s+\#?\d+|the\s+issue\s+that|until\s+now|so\s+far\s+every
    |(?:earlier|previous|older|first|old)\s+versions?\b|version\s+0\.\d+\s+of|formerly|previously
    |anymore|we\s+(?:changed|replaced|removed|moved|rewrote)|was\s+(?:changed|replaced|rewritten)\s+(?:to|by|with))""",
    re.I | re.X)

def _py_text(p:Path)->str: # the docstrings and comments of a module
    src = p.read_text(encoding='utf-8')
    docs = [ast.get_docstring(n) or '' for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    return '\n'.join(docs + [l.split('#', 1)[1] for l in src.splitlines() if '#' in l and not l.lstrip().startswith('# %%')])

@pytest.mark.parametrize('f', NBS + sorted((ROOT/'ssd_nbs').glob('[!_]*.py')), ids=lambda p: p.name)
def test_no_history_is_narrated(f):
    txt = _py_text(f) if f.suffix == '.py' else '\n'.join(_src(c) for c in _cells(f))
    hits = sorted({m.group(0) for m in _HISTORY.finditer(txt)})
    assert not hits, f'{f.relative_to(ROOT)} narrates history: {hits}'

_MACHINE = re.compile(r'(?:/work/|/home/|/root/|/tmp/|/Users/|site-packages|[A-Z]:\\\\)')

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_stored_outputs_name_nothing_of_the_machine(nb):
    bad = []
    for i, c in enumerate(_cells(nb)):
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*hide\s*$', _src(c), re.M): continue
        for o in c.get('outputs', []):
            t = _out_text(o)
            if o.get('name') == 'stderr' or 'Warning' in t or _MACHINE.search(t): bad.append((i, t.strip()[:120]))
    assert not bad, f'{nb.relative_to(ROOT)}: outputs with stderr, a warning or a path of the machine (cell, text): {bad}'

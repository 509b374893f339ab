"""The package's rooms keep their doors: which module may import which, read from the sources themselves.
`core` imports no other module of ours; `data` nothing of the model, the loss or the learner; `metrics` not the
learner; and nothing but the command-line module reads `sys.argv`."""
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'ssd_nbs'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def ours(mod:str)->set:
    "The modules of ssd_nbs that `mod` imports (at any depth of its code, lazily or not)"
    res = set()
    for node in ast.walk(ast.parse((PKG/f'{mod}.py').read_text())):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ''
            if node.level == 1: res.add(name.split('.')[0] if name else '')
            elif name.startswith('ssd_nbs.'): res.add(name.split('.')[1])
            if (node.level == 1 and not name) or name == 'ssd_nbs': res |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            res |= {a.name.split('.')[1] for a in node.names if a.name.startswith('ssd_nbs.')}
    return res & set(MODULES)

def test_the_parser_sees_imports():
    assert {'core', 'config', 'train', 'detector'} <= ours('cli') and 'inference' in ours('learner')

@pytest.mark.parametrize('mod,banned', [('core', set(MODULES) - {'core'}),
                                        ('data', {'model', 'loss', 'learner', 'config', 'train', 'detector', 'cli'}),
                                        ('metrics', {'learner', 'train', 'detector', 'cli'})])
def test_imports_stay_inside_their_rooms(mod, banned):
    assert not ours(mod) & banned, f'ssd_nbs.{mod} imports {sorted(ours(mod) & banned)}'

def test_only_the_command_line_reads_argv():
    readers = [m for m in MODULES if 'argv' in {n.attr for n in ast.walk(ast.parse((PKG/f'{m}.py').read_text()))
                                               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                                               and n.value.id == 'sys'}]
    assert readers == ['cli'], readers

def test_no_module_is_too_long():
    long = {m: n for m in MODULES if (n := len((PKG/f"{m}.py").read_text().splitlines())) > 420}   # "about 400"
    assert not long and len((PKG/'cli.py').read_text().splitlines()) <= 200, long

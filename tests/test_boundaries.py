"""The package's rooms keep their doors: which module may import which, read from the sources themselves.
`files` imports no other module of ours and `core` only `files`; `data` nothing of the model, the loss or the learner;
`metrics` not the learner; `predict` (what `ssd-predict --engine onnx` runs) no third-party package but numpy, PIL
and fastcore at its top, and of ours only `files` (and `detector` lazily, for the torch engine); a `Detector` (and
`ssd-export`) no fastai: the model code is PyTorch, fastai's training side stays with the learner; no import cycle
among the modules' top-level imports; no module imports another's private (`_name`) names; and nothing but the
command-line module reads `sys.argv`."""
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'ssd_nbs'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def ours(mod:str, lazy:bool=True)->set:
    "The modules of ssd_nbs that `mod` imports (at any depth of its code, lazily or not; `lazy=False`: at its top)"
    res,tree = set(),ast.parse((PKG/f'{mod}.py').read_text())
    for node in (ast.walk(tree) if lazy else tree.body):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ''
            if node.level == 1: res.add(name.split('.')[0] if name else '')
            elif name.startswith('ssd_nbs.'): res.add(name.split('.')[1])
            if (node.level == 1 and not name) or name == 'ssd_nbs': res |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            res |= {a.name.split('.')[1] for a in node.names if a.name.startswith('ssd_nbs.')}
    return res & set(MODULES)

def top_level(mod:str)->set:
    "The top-level packages that `mod` imports when it is imported (its module-level statements, not its functions)"
    res = set()
    for node in ast.parse((PKG/f'{mod}.py').read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 0: res.add(node.module.split('.')[0])
        elif isinstance(node, ast.Import): res |= {a.name.split('.')[0] for a in node.names}
    return res

def test_the_parser_sees_imports():
    assert {'files', 'config', 'train', 'predict', 'deploy'} <= ours('cli') and 'inference' in ours('learner')
    assert 'torch' in top_level('detector') and 'ssd_nbs' not in top_level('predict')

@pytest.mark.parametrize('mod,banned', [('files', set(MODULES) - {'files'}), ('core', set(MODULES) - {'core', 'files'}),
                                        ('predict', set(MODULES) - {'predict', 'files', 'detector'}),
                                        ('data', {'model', 'loss', 'learner', 'config', 'train', 'detector', 'cli'}),
                                        ('metrics', {'learner', 'train', 'detector', 'cli'})])
def test_imports_stay_inside_their_rooms(mod, banned):
    assert not ours(mod) & banned, f'ssd_nbs.{mod} imports {sorted(ours(mod) & banned)}'

def test_the_light_modules_import_no_torch():
    "What `ssd-predict --engine onnx` imports: numpy, PIL, fastcore, the standard library; never torch or fastai"
    import sys
    std = set(sys.stdlib_module_names)
    for mod in ('files', 'predict', 'cli'):
        assert top_level(mod) - std <= {'numpy', 'PIL', 'fastcore', '__future__'}, (mod, top_level(mod) - std)

DETECTOR = ('files', 'core', 'anchors', 'body', 'model', 'loss', 'inference', 'fit', 'config', 'detector', 'predict', 'deploy')

def loaded(mods)->set:
    "`mods` and the modules of ours that importing them loads"
    res,todo = set(),list(mods)
    while todo:
        m = todo.pop()
        if m not in res: res.add(m); todo += ours(m, lazy=False)
    return res

def test_a_detector_imports_no_fastai():
    "What `ssd-predict` (PyTorch) and `ssd-export` load: PyTorch and the model code, never fastai or the training side"
    assert loaded(['detector', 'deploy']) <= set(DETECTOR), sorted(loaded(['detector', 'deploy']) - set(DETECTOR))
    assert not [m for m in DETECTOR if 'fastai' in top_level(m)], [m for m in DETECTOR if 'fastai' in top_level(m)]

def cycles(graph:dict)->list:
    "Every elementary cycle of `graph` (module -> set of modules), each once, as a list that starts at its least name"
    res = []
    def walk(path):
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]: res.append(path + [nxt])
            elif nxt > path[0] and nxt not in path: walk(path + [nxt])
    for m in sorted(graph): walk([m])
    return res

def test_cycles_finds_every_cycle():
    assert cycles({'a': {'b'}, 'b': {'a', 'c'}, 'c': {'a'}, 'd': {'d'}, 'e': set()}) == [
        ['a', 'b', 'a'], ['a', 'b', 'c', 'a'], ['d', 'd']]
    assert cycles({'a': {'b'}, 'b': {'c'}}) == []

def test_no_import_cycle():
    "No chain of top-level imports leads from a module back to itself (`a` -> `b` -> ... -> `a`)"
    found = cycles({m: ours(m, lazy=False) for m in MODULES})
    assert not found, f'{len(found)} import cycles: ' + '; '.join(' -> '.join(c) for c in found)

def private_imports(mod:str)->list:
    "`(line, module, name)` for every private name (`_x`, not dunder) that `mod` imports from another module of ours"
    res = []
    for node in ast.walk(ast.parse((PKG/f'{mod}.py').read_text())):
        if not isinstance(node, ast.ImportFrom): continue
        name = node.module or ''
        if node.level == 1: src = name.split('.')[0]
        elif name.startswith('ssd_nbs.'): src = name.split('.')[1]
        else: continue
        for a in node.names:
            if not src: src_a,nm = a.name, None                           # `from . import x`: a module, not a name
            else: src_a,nm = src, a.name
            if nm and nm.startswith('_') and not nm.startswith('__') and src_a != mod: res.append((node.lineno, src_a, nm))
    return res

def test_private_imports_are_seen(tmp_path, monkeypatch):
    (tmp_path/'a.py').write_text('from .b import _x, y, __version__\ndef f():\n    from ssd_nbs.c import _z\nfrom .a import _own')
    monkeypatch.setattr(__import__(__name__), 'PKG', tmp_path)
    assert private_imports('a') == [(1, 'b', '_x'), (3, 'c', '_z')]

def test_no_private_names_across_modules():
    "A name that starts with `_` belongs to its module: another module that needs it needs it made public"
    found = [f'{m}.py:{line} imports {src}.{name}' for m in MODULES for line,src,name in private_imports(m)]
    assert not found, f'{len(found)} private imports across modules: ' + '; '.join(found)

def test_only_the_command_line_reads_argv():
    readers = [m for m in MODULES if 'argv' in {n.attr for n in ast.walk(ast.parse((PKG/f'{m}.py').read_text()))
                                               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                                               and n.value.id == 'sys'}]
    assert readers == ['cli'], readers

LONGER = {'readers': 700}  # the one module of readers: four formats, their layouts and writers, one place for image files and splits

def test_no_module_is_too_long():
    long = {m: n for m in MODULES if (n := len((PKG/f"{m}.py").read_text().splitlines())) > LONGER.get(m, 420)}   # "about 400"
    assert not long and len((PKG/'cli.py').read_text().splitlines()) <= 200, long

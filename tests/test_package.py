"""The installed package: what `pip` recorded for it (its metadata, its requirements, its console scripts) works as it
says, and its modules agree with the notebooks' exports."""
import ast, contextlib, importlib, io, subprocess, sys
import importlib.metadata as md
from pathlib import Path
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/'ssd_nbs'
DIST = md.distribution('ssd_nbs')
REQS = [Requirement(r) for r in DIST.requires or []]
RUNTIME = [r for r in REQS if not r.marker]                              # what `pip install ssd_nbs` installs
OWNERS = md.packages_distributions()                                     # import name -> [distributions]
SCRIPTS = sorted(e.name for e in DIST.entry_points if e.group == 'console_scripts')

def test_metadata_names_this_package():
    import ssd_nbs
    assert DIST.metadata['Name'] == 'ssd_nbs' and DIST.version == ssd_nbs.__version__
    from packaging.specifiers import SpecifierSet
    assert '.'.join(map(str, sys.version_info[:3])) in SpecifierSet(DIST.metadata['Requires-Python'])
    assert {'dev', 'onnx'} <= set(DIST.metadata.get_all('Provides-Extra'))

@pytest.mark.parametrize('req', RUNTIME, ids=str)
def test_each_requirement_is_installed_in_a_version_it_allows(req):
    v = md.version(req.name)
    assert req.specifier.contains(v, prereleases=True), f'{req.name} {v} does not satisfy {req}'
    mods = [m for m,dists in OWNERS.items() if req.name.lower().replace('_', '-') in
            [d.lower().replace('_', '-') for d in dists] and m.isidentifier() and not m.startswith('_')]
    assert mods, f'{req.name}: installed, but it provides no module'
    for m in mods: importlib.import_module(m)

def _requirement_closure()->set: # the distributions `pip install ssd_nbs` brings: its requirements and theirs
    norm = lambda n: n.lower().replace('_', '-')
    seen,todo = set(),[r.name for r in RUNTIME]
    while todo:
        n = norm(todo.pop())
        if n in seen: continue
        seen.add(n)
        try: todo += [r.name for r in map(Requirement, md.requires(n) or []) if not r.marker or r.marker.evaluate({'extra': ''})]
        except md.PackageNotFoundError: pass
    return seen

def test_the_requirements_bring_every_import():
    "Each third-party package that a module imports at its top comes with `pip install ssd_nbs` (declared, or needed by one)"
    owners,have = OWNERS,_requirement_closure()
    missing = {}
    for p in sorted(PKG.glob('*.py')):
        for node in ast.parse(p.read_text()).body:
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for top in {n.split('.')[0] for n in names} - set(sys.stdlib_module_names) - {'ssd_nbs', '__future__'}:
                if not {d.lower().replace('_', '-') for d in owners.get(top, [top])} & have: missing.setdefault(top, []).append(p.stem)
    assert not missing, f'imported but not installed by the requirements: {missing}'

@pytest.mark.parametrize('name', SCRIPTS)
def test_console_script_resolves_and_answers_help(name):
    ep = next(e for e in DIST.entry_points if e.group == 'console_scripts' and e.name == name)
    main,out = ep.load(),io.StringIO()
    assert ep.module.startswith('ssd_nbs.') and callable(main)
    with mock_argv([name, '--help']), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e: main()
    assert e.value.code == 0 and out.getvalue().startswith(f'usage: {name}'), out.getvalue()[:300]
    assert (Path(sys.executable).parent/name).is_file(), f'{name} is not installed beside {sys.executable}'

@contextlib.contextmanager
def mock_argv(argv):
    old,sys.argv = sys.argv,list(argv)
    try: yield
    finally: sys.argv = old

def test_every_console_script_is_there():
    assert SCRIPTS == ['ssd-data', 'ssd-export', 'ssd-predict', 'ssd-train']

def test_every_exported_symbol_is_in_its_module():
    "nbdev's index of the notebooks' exports (`_modidx`) and the modules agree, name by name"
    from ssd_nbs._modidx import d
    assert len(d['syms']) >= 20
    missing = []
    for mod,syms in d['syms'].items():
        m = importlib.import_module(mod)
        for sym in syms:
            obj = m
            for part in sym[len(mod)+1:].split('.'):
                obj = getattr(obj, part, None)
                if obj is None: missing.append(sym); break
    assert not missing, missing

def test_every_module_imports_and_exports_what_it_lists():
    mods = [p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_')]
    for m in mods:
        mod = importlib.import_module(f'ssd_nbs.{m}')
        for name in getattr(mod, '__all__', []): assert hasattr(mod, name), f'ssd_nbs.{m}.{name}'

def test_import_in_a_fresh_process_needs_no_display():
    code = 'import matplotlib; import ssd_nbs.learner, ssd_nbs.data; print(matplotlib.get_backend())'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={'MPLBACKEND': 'Agg', 'PATH': '', 'PYTHONPATH': str(ROOT)})
    assert out.returncode == 0, out.stderr

def test_setup_py_gives_the_metadata_without_deprecated_apis():
    r = subprocess.run([sys.executable, '-W', 'error::DeprecationWarning', 'setup.py', '--name', '--version'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ['ssd_nbs', DIST.version], r.stderr[-2000:]

"""Every command of the README and of its guide pages, run exactly as written.

The guide pages are the notebooks of `nbs/library/` that hold prose and commands and no code cell (the README links
them: your own data, results, bad input, deploying, distributed training); their code blocks are markdown, so
`nbdev_test` runs none of them: this test does. Each line of the shell code blocks is run as it is, in a shell, in a
temporary folder where the paths it names exist: tiny data sets in each layout, built where the commands look for
them (a few BCCD images, or the synthetic shapes without BCCD). The README's lines run first, then each page's, in
the order of their file names. The lines that are not meant to run here (installing, a notebook server, the test
suite itself) are listed in `EXCLUDED`, by their exact text, with the reason. The Python blocks run too, as they
are, after the shell lines (the one that promises to need only numpy, PIL and onnxruntime runs with ssd_nbs, fastai
and torch made unimportable). A command line that is neither run nor excluded fails the test, and so does an
exclusion that no longer matches a line.

The costs stay small through the data only: the commands are the pages', whatever their `--epochs` or `--size`; the
two lines of `SLOW` (trainings at 320 px whose path a lighter test runs) run only with `pytest --slow`."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT/'README.md'

EXCLUDED = {
    'pip install -e .                                                         # the package and its ssd-* commands':
        'installs the package',
    'pip install -e ".[dev]" && ssd-train': 'installs the package; the default run (12,000 images, about 5 minutes) is '
                                            "the slow cell of 28_train, and tests/test_cli.py runs ssd-train's options",
    'pip install -e ".[dev]" && nbdev_test --timing && pytest tests': 'the test suite itself',
    'pip install -e ".[dev]" && jupyter lab nbs': 'starts a notebook server and waits for a browser',
    'pip install -e ".[onnx]"                      # onnx, onnxruntime': 'installs packages',
}
SLOW = {  # lines run only with `pytest --slow` (or SSD_SLOW=1): long trainings whose path a lighter test runs
    'ssd-train --data path/to/labelimg_folder --size 320 --epochs 10 --out run320   # XML and images (LabelImg), 320 px, 10 epochs':
        "10 epochs at 320 px; test_sources trains on a LabelImg folder, test_cli sets --size and --epochs",
    'ssd-train --data path/to/voc_folder --recipe bccd --epochs 25 --out bccd_run --resume   # go on from the last epoch':
        '5 more epochs at 320 px; test_cli resumes a run (and a killed run) with more --epochs',
}
SHELL, PYTHON = ('bash', 'sh', 'shell', 'console'), ('python', 'py')

def code_blocks(text:str)->list: # [(language, code)] of the fenced code blocks of a markdown text
    return [(m.group(1).strip().lower(), m.group(2)) for m in re.finditer(r'^```([^\n]*)\n(.*?)^```', text, re.M | re.S)]

def command_lines(text:str)->list: # every line of the shell blocks that is a command (not blank, not a comment)
    return [l for lang,code in code_blocks(text) if lang in SHELL for l in code.splitlines()
            if l.strip() and not l.lstrip().startswith('#')]

def python_blocks(text:str)->list: return [code for lang,code in code_blocks(text) if lang in PYTHON]

def _markdown(nb:Path)->str: return '\n\n'.join(''.join(c['source']) for c in json.loads(nb.read_text(encoding='utf-8'))['cells'])

def _is_guide(nb:Path)->bool: # prose and commands only: no code cell, so nothing of it runs under nbdev_test
    cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
    return not any(c['cell_type'] == 'code' for c in cells) and '```' in _markdown(nb)

GUIDES = [nb for nb in sorted((ROOT/'nbs'/'library').glob('*.ipynb')) if _is_guide(nb)]
TEXT = '\n\n'.join([README.read_text()] + [_markdown(nb) for nb in GUIDES])
RUN = [l for l in command_lines(TEXT) if l not in EXCLUDED]

def test_every_command_line_is_run_or_excluded():
    lines = command_lines(TEXT)
    assert RUN and len(python_blocks(TEXT)) >= 2, 'the README and its guides have no commands to run?'
    assert {nb.stem for nb in GUIDES} >= {'33_your_data', '36_deploy_guide'}, GUIDES
    assert all(f'nbs/library/{nb.name}' in README.read_text() for nb in GUIDES), 'a guide page that the README does not link'
    stale = [l for l in [*EXCLUDED, *SLOW] if l not in lines]
    assert not stale, f'EXCLUDED or SLOW names lines the README no longer has: {stale}'
    assert all(l in RUN or l in EXCLUDED for l in lines)
    assert all(not l.startswith(('pip ', 'jupyter', 'nbdev_test', '.ci/')) for l in RUN), RUN

def test_the_readme_reads_in_five_minutes():
    "The front door stays short: the detail is on the guide pages it links"
    words = len(re.findall(r'\S+', re.sub(r'^```.*?^```', ' ', README.read_text(), flags=re.M | re.S)))
    assert words <= 1500, f'README.md has {words} words of prose: move detail to a guide page'
    cells = json.loads((ROOT/'nbs'/'index.ipynb').read_text(encoding='utf-8'))['cells']
    long = [(i, n) for i,c in enumerate(cells) if c['cell_type'] == 'markdown' and (n := len(re.findall(r'\S+', ''.join(c['source'])))) > 250]
    assert not long, f'markdown cells of nbs/index.ipynb over 250 words (cell, words): {long}'

# ---- the folder the commands run in

def _images(n:int, d:Path)->tuple: # (files, targets) of n small images with boxes: BCCD's, else the shapes'
    from ssd_nbs.data import make_shapes
    from ssd_nbs.readers import bccd_path, voc_items
    try: src = bccd_path()
    except FileNotFoundError: src = make_shapes(d/'shapes', n=n, size=96)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        files,targets = voc_items(src)
    return files[:n], targets[:n]

def _vocdevkit(items, dest:Path, n_test:int): # `dest`: Annotations/, JPEGImages/, ImageSets/Main/{trainval,test}.txt
    from ssd_nbs.readers import to_voc
    to_voc(items, dest, 'JPEGImages', 'Annotations')
    (dest/'ImageSets'/'Main').mkdir(parents=True)
    stems = [Path(f).stem for f in items[0]]
    (dest/'ImageSets'/'Main'/'trainval.txt').write_text('\n'.join(stems[:-n_test]) + '\n')
    (dest/'ImageSets'/'Main'/'test.txt').write_text('\n'.join(stems[-n_test:]) + '\n')

@pytest.fixture(scope='module')
def here(tmp_path_factory):
    "The folder the README's commands run in, with every path they name"
    from ssd_nbs.readers import to_voc, to_csv, to_yolo, to_coco
    from ssd_nbs.train import train
    from ssd_nbs.config import SHAPES
    d = tmp_path_factory.mktemp('readme')
    items = _images(10, d/'src')       # every layout: 8 to train, with the batch of 8 of the recipes (fastai drops a
    tr, va = (items[0][:8], items[1][:8]), (items[0][8:], items[1][8:])       # short one), and 2 to validate
    _vocdevkit(items, d/'path/to/voc_folder', n_test=2)
    _vocdevkit(items, d/'path/to/your_data', n_test=2)                        # the README's own ssd-train --data
    _vocdevkit(items, d/'my_data', n_test=2)                                  # the Python block's voc_items('my_data', ...)
    to_voc(items, d/'path/to/labelimg_folder')
    to_csv(tr, d/'path/to/csv_folder'/'train_labels.csv'); to_csv(va, d/'path/to/csv_folder'/'test_labels.csv')
    to_yolo(tr, d/'path/to/yolo_folder', 'train'); to_yolo(va, d/'path/to/yolo_folder', 'val')
    to_coco(items, d/'annotations.json', d/'path/to/images')
    for f in ('path/to/new_images', 'photos'):
        (d/f).mkdir(parents=True)
        for o in items[0][8:]: shutil.copy(o, d/f/Path(o).name)
    shutil.copy(items[0][9], d/'new_image.jpg'); shutil.copy(items[0][9], d/'photo.jpg')
    from ssd_nbs.data import make_shapes                                      # ssd_run: what the quick start's ssd-train writes
    train(make_shapes(d/'src'/'tiny', n=8, size=64), SHAPES, epochs=1, bs=4, out=d/'ssd_run', n_shapes=8)
    return d

def _env(d:Path)->dict:
    "The environment of the commands: this checkout's package first, the venv's console scripts on PATH"
    pp = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])
    return {**os.environ, 'PYTHONPATH': pp, 'PATH': os.pathsep.join([str(Path(sys.executable).parent), os.environ['PATH']]),
            'MPLBACKEND': 'Agg', 'SSD_NBS_CACHE': str(d/'cache'), 'OMP_NUM_THREADS': '1'}

def _outputs(line:str)->list: # the files a command line must leave behind
    a = line.split('#')[0].split()
    opt = lambda k: a[a.index(k)+1] if k in a else None
    if a[0] == 'ssd-train': return [f"{opt('--out') or 'ssd_run'}/model.safetensors", f"{opt('--out') or 'ssd_run'}/metrics.json"]
    if a[0] == 'ssd-data': return [f"{opt('--out') or 'ssd_data'}/data.json"]
    if a[0] == 'ssd-predict': return [f"{opt('--out')}/detections.json"]
    if a[0] == 'ssd-export': return [opt('--onnx') or str(Path(a[1]).with_suffix('.onnx'))]
    return []

@pytest.fixture(scope='module')
def ran(here, request):
    "Every command line, in the README's order (later lines use what earlier ones wrote): {line: CompletedProcess}"
    from conftest import run_slow
    res = {}
    for l in RUN:
        if l in SLOW and not run_slow(request.config): continue
        t0 = _children_cpu()
        res[l] = subprocess.run(l, shell=True, cwd=here, env=_env(here), capture_output=True, text=True, timeout=900)
        print(f'{_children_cpu()-t0:6.1f} CPU s  {l}')
    return res

def _children_cpu()->float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

@pytest.mark.parametrize('line', [pytest.param(l, marks=pytest.mark.slow) if l in SLOW else l for l in RUN])
def test_command_runs_as_written(ran, here, line):
    r = ran[line]
    assert r.returncode == 0, f'{line}\n{r.stderr[-3000:]}'
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    for o in _outputs(line): assert (here/o).is_file(), (line, o)

def test_what_the_commands_wrote(ran, here):
    slow = len(ran) == len(RUN)                                            # the SLOW lines ran too
    m = {k: json.loads((here/k/'metrics.json').read_text()) for k in ('my_run', 'bccd_run', 'run320', 'csv_run', 'yolo_run', 'coco_run')
         if slow or k != 'run320'}
    assert {k: v['settings']['layout'] for k,v in m.items()} == {**dict(my_run='voc', bccd_run='voc', csv_run='csv', yolo_run='yolo',
                                                                         coco_run='coco'), **(dict(run320='voc') if slow else {})}
    d = m['my_run']['derived']                                           # no --recipe: chosen from the data, with reasons
    assert {'grids', 'stride', 'zooms', 'ratios', 'epochs'} <= set(d) and all(v['reason'] for v in d.values())
    assert m['my_run']['settings']['grids'] == d['grids']['value'] and m['my_run']['epochs'] == d['epochs']['value']
    assert not m['bccd_run'].get('derived')                              # --recipe: nothing derived
    assert m['csv_run']['settings']['time'] == 60 and m['csv_run']['epochs'] == m['csv_run']['derived']['epochs']['value']
    assert m['bccd_run']['epochs'] == (25 if slow else 20) and m['bccd_run']['settings']['size'] == 320  # resumed from 20 to 25
    if slow:
        assert m['run320']['settings']['size'] == 320 and m['run320']['epochs'] == 10
        assert m['run320']['settings']['arch'] == 'efficientnet_lite0' and m['run320']['settings']['pretrained'] is True   # --data: a body that sees
    assert m['csv_run']['settings']['split'] == 'train_labels.csv and test_labels.csv'
    assert m['coco_run']['settings']['arch'] == 'efficientnet_lite0' and m['coco_run']['settings']['pretrained'] is True
    assert 'ImageSets/Main/trainval.txt and test.txt' == m['bccd_run']['settings']['split'] == m['my_run']['settings']['split']

@pytest.mark.parametrize('i', range(len(python_blocks(TEXT))))
def test_python_block_runs_as_written(ran, here, i):
    code = python_blocks(TEXT)[i]
    (here/f'block{i}.py').write_text(code)
    run = [sys.executable, f'block{i}.py']
    if 'onnxruntime' in code and 'ssd_nbs' not in code:                   # numpy, PIL and onnxruntime only, it says
        shutil.copy(here/'ssd_run'/'model.onnx', here/'model.onnx')              # (what ssd-export wrote, above)
        run = [sys.executable, '-c', "import sys\nfor m in ('ssd_nbs', 'fastai', 'torch', 'torchvision'): sys.modules[m] = None\n"
                                     f"exec(compile(open('block{i}.py').read(), 'block{i}.py', 'exec'))"]
    r = subprocess.run(run, cwd=here, env=_env(here), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]

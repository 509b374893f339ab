"The installed package: its public API imports, its modules agree with the notebooks' exports, its set-up is sound."
import configparser, importlib, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_public_api_imports():
    from ssd_nbs.anchors import make_anchors, match_anchors, activ_to_bbox, bbox_to_activ
    from ssd_nbs.loss import SSDLoss
    from ssd_nbs.learner import ssd_learner
    from ssd_nbs.data import make_shapes, ssd_dls
    from ssd_nbs.readers import voc_items
    from ssd_nbs.core import box_iou, show_boxes
    assert callable(ssd_learner) and len(make_anchors((4,2,1))) == 21

def test_every_module_imports_and_exports_what_it_lists():
    mods = [p.stem for p in (ROOT/'ssd_nbs').glob('*.py') if not p.stem.startswith('_')]
    assert {'core', 'data', 'anchors', 'model', 'loss', 'learner'} <= set(mods)
    for m in mods:
        mod = importlib.import_module(f'ssd_nbs.{m}')
        for name in getattr(mod, '__all__', []): assert hasattr(mod, name), f'ssd_nbs.{m}.{name}'

def test_import_in_a_fresh_process_needs_no_display():
    code = 'import matplotlib; import ssd_nbs.learner, ssd_nbs.data; print(matplotlib.get_backend())'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={'MPLBACKEND': 'Agg', 'PATH': ''})
    assert out.returncode == 0, out.stderr

def test_settings_requirements_cover_the_imports():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    reqs = cfg['DEFAULT']['requirements']
    for pkg in ('fastai', 'torch', 'torchvision', 'matplotlib'): assert pkg in reqs
    assert cfg['DEFAULT']['tst_flags'] == 'slow' and cfg['DEFAULT']['lib_name'] == 'ssd_nbs'
    assert 'import pkg_resources' not in (ROOT/'setup.py').read_text()

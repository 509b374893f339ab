"""Shared fixtures; the `slow` mark: a test marked `@pytest.mark.slow` trains long and what it checks is covered
lighter elsewhere; it is skipped unless `pytest --slow` (or `SSD_SLOW=1`); and `--cpu-durations N`: the N costliest
tests in CPU seconds (this process and the subprocesses it waited for), which a shared machine does not blur as it
blurs `--durations`' wall time."""
import os, resource, warnings
from collections import defaultdict
import pytest

def pytest_addoption(parser):
    parser.addoption('--slow', action='store_true', default=False, help='also run the tests marked slow (long trainings)')
    parser.addoption('--cpu-durations', type=int, default=None, metavar='N',
                     help='show the N costliest tests in CPU seconds, and the CPU seconds of each file (0: all tests)')

def _cpu()->float: # CPU seconds of this process and of the children it has waited for
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ('ru_utime', 'ru_stime'))

CPU = {}                                                              # test id -> CPU seconds (its fixtures' set-up too)

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t = _cpu()
    yield
    CPU[item.nodeid] = _cpu() - t

def pytest_terminal_summary(terminalreporter, config):
    n = config.getoption('--cpu-durations')
    if n is None or not CPU: return
    tr,files = terminalreporter,defaultdict(float)
    for k,v in CPU.items(): files[k.split('::')[0]] += v
    tr.write_sep('=', f'costliest {n or len(CPU)} tests in CPU seconds (with their subprocesses)')
    for k,v in sorted(CPU.items(), key=lambda o: -o[1])[:n or None]: tr.write_line(f'{v:8.1f}  {k}')
    tr.write_sep('-', 'CPU seconds by file')
    for k,v in sorted(files.items(), key=lambda o: -o[1]): tr.write_line(f'{v:8.1f}  {k}')
    tr.write_line(f'{sum(CPU.values()):8.1f}  all {len(CPU)} tests')

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: trains long; skipped unless --slow or SSD_SLOW=1')

def run_slow(config)->bool: return config.getoption('--slow') or os.environ.get('SSD_SLOW', '') not in ('', '0')

def pytest_collection_modifyitems(config, items):
    if run_slow(config): return
    skip = pytest.mark.skip(reason='slow: run with --slow or SSD_SLOW=1')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)

@pytest.fixture(scope='session')
def shapes_voc(tmp_path_factory):
    "64 shapes images of 64 px in a VOC folder"
    from ssd_nbs.data import make_shapes
    return make_shapes(tmp_path_factory.mktemp('shapes')/'voc', n=64, size=64)

@pytest.fixture(scope='session')
def trained_learner(shapes_voc):
    """A tiny SSD learner (tiny_cnn, grids 2 and 1) trained 3 epochs on `shapes_voc` (about a CPU second), and its
    validation loss before training: `(learn, untrained_loss)`. Shared: a test that changes the learner trains its own."""
    import torch
    from fastai.vision.all import set_seed
    from ssd_nbs.data import ssd_dls
    from ssd_nbs.readers import voc_items
    from ssd_nbs.learner import ssd_learner
    from ssd_nbs.body import tiny_cnn
    torch.set_num_threads(1)
    set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dls = ssd_dls(voc_items(shapes_voc), size=64, bs=8)
    learn = ssd_learner(dls, arch=tiny_cnn, pretrained=False, grids=(2,1))
    with learn.no_bar(), learn.no_logging():
        untrained = learn.validate()[0]
        learn.fit_one_cycle(3, 1e-2)
    return learn, untrained

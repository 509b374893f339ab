"""A clone carries its real data: `bccd_path()` finds the repository's own copy without any setting, and an install
without the clone says in one line where BCCD comes from."""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _run(code, cwd, pythonpath=None):
    env = {k: v for k,v in os.environ.items() if k != 'SSD_NBS_BCCD'}
    if pythonpath: env['PYTHONPATH'] = str(pythonpath)
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True)

def test_clone_finds_its_own_copy(tmp_path):
    "From any folder, with `SSD_NBS_BCCD` unset, the package of this clone finds `data/BCCD` inside the clone"
    r = _run('from ssd_nbs.readers import bccd_path; print(bccd_path())', tmp_path, ROOT)
    assert r.returncode == 0, r.stderr
    p = Path(r.stdout.strip())
    assert p == ROOT/'data'/'BCCD'
    assert len(list((p/'JPEGImages').glob('*.jpg'))) == 364 and len(list((p/'Annotations').glob('*.xml'))) == 364
    assert (p/'LICENSE').read_text().startswith('MIT License')
    assert all((p/'ImageSets'/'Main'/f'{s}.txt').stat().st_size > 0 for s in ('trainval', 'test'))

def test_nothing_outside_the_clone_is_looked_at(tmp_path):
    """The package alone (as pip installs it into site-packages, no clone around it) finds no BCCD, even with a
    `shared/data/BCCD` beside it or above the current folder: one line says where the data comes from"""
    (tmp_path/'shared'/'data'/'BCCD'/'Annotations').mkdir(parents=True)      # a decoy that must not be used
    site = tmp_path/'site'; shutil.copytree(ROOT/'ssd_nbs', site/'ssd_nbs', ignore=shutil.ignore_patterns('__pycache__'))
    r = _run('from ssd_nbs.readers import bccd_path; bccd_path()', tmp_path, site)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('FileNotFoundError: No BCCD data set: it comes with a clone of the ssd_nbs repository (data/BCCD)')
    assert 'SSD_NBS_BCCD' in last

def test_the_setting_points_at_another_copy(tmp_path):
    env_dir = tmp_path/'my_bccd'; env_dir.mkdir()
    r = subprocess.run([sys.executable, '-c', 'from ssd_nbs.readers import bccd_path; print(bccd_path())'], cwd=tmp_path,
                       env={**os.environ, 'SSD_NBS_BCCD': str(env_dir), 'PYTHONPATH': str(ROOT)}, capture_output=True, text=True)
    assert r.returncode == 0 and Path(r.stdout.strip()) == env_dir

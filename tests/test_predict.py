"""`ssd-predict` on folders that never end: batches streamed into `detections.json(l)`, a run killed half-way (in the
process, and for real with SIGKILL) leaves a valid file and `--resume` finishes it, unreadable images are named in one
warning and skipped with exit code 2, large photos are read at reduced size, foreign pickles are refused without
PyTorch's advice to load them unsafely, and `ssd-export`. Peak memory is measured in `bench/bench_inference.py`."""
import json, os, pickle, signal, subprocess, sys, time, warnings
from collections import Counter
from pathlib import Path
import pytest
import torch
from PIL import Image

from ssd_nbs.files import SSDError
from ssd_nbs.config import SSDConfig
from ssd_nbs.data import make_shapes
from ssd_nbs.detector import build_detector, Detector
from ssd_nbs.predict import predict_files, read_image, PIC
from ssd_nbs.cli import predict_main, export_main

VOCAB = ['#na#', 'circle', 'square', 'triangle']
KW = dict(score_thresh=0.05, max_det=5, bs=4, progress=False)

@pytest.fixture(scope='module')
def tmp(tmp_path_factory):
    torch.set_num_threads(1)
    return tmp_path_factory.mktemp('predict')

@pytest.fixture(scope='module')
def model(tmp):
    "A detector with random weights (its detections are as good as any for the bookkeeping tested here), saved"
    torch.manual_seed(0)
    det = build_detector(SSDConfig(grids=(4,2,1)), VOCAB)
    det.save(tmp/'model.safetensors')
    return det, tmp/'model.safetensors'

@pytest.fixture(scope='module')
def folder(tmp): return make_shapes(tmp/'voc', n=18, size=64)/'JPEGImages'     # 18 images: 5 batches of 4

def main(capsys, monkeypatch, func, *args):
    "(exit code, stdout, stderr) of a command's entry point, called in this process"
    monkeypatch.setattr(sys, 'argv', ['cmd', *map(str, args)])
    capsys.readouterr()
    try: func(); code = 0
    except SystemExit as e: code = e.code
    return (code, *capsys.readouterr())

def _json(out): return json.loads((out/'detections.json').read_text())

class Stop(Exception): pass

class Killed(Detector):
    "A `Detector` that fails at its `n`-th batch, as a process killed there would stop"
    def __init__(self, det, n): super().__init__(det.model, det.vocab); self.n = n
    def __call__(self, *args, **kwargs):
        self.n -= 1
        if self.n == 0: raise Stop()
        return super().__call__(*args, **kwargs)

def test_stopped_run_leaves_valid_json_and_resume_finishes_it(model, folder, tmp):
    det,_ = model
    whole = predict_files(det, folder, tmp/'whole', **KW)
    assert len(whole['images']) == 18 and whole['skipped'] == []
    with pytest.raises(Stop): predict_files(Killed(det, 3), folder, tmp/'stopped', **KW)
    d = _json(tmp/'stopped')
    assert d['images'] == whole['images'][:8]                                    # the two batches it finished
    assert len(list((tmp/'stopped').glob('*_pred.png'))) == 8
    with open(tmp/'stopped'/'detections.jsonl', 'a') as f: f.write('{"file": "half a li')   # a kill mid-write
    done = predict_files(det, folder, tmp/'stopped', resume=True, **KW)
    assert done['images'] == whole['images']
    assert len((tmp/'stopped'/'detections.jsonl').read_text().splitlines()) == 18
    again = predict_files(det, folder, tmp/'stopped', resume=True, **KW)        # nothing left to do
    assert again['images'] == whole['images']
    fresh = predict_files(det, folder, tmp/'stopped', **KW)                      # without --resume: from the start
    assert fresh['images'] == whole['images']

def test_resume_with_other_settings_is_refused(model, folder, tmp):
    predict_files(model[0], folder, tmp/'other', **KW)
    with pytest.raises(SSDError, match='resume: .*detections.json was written with score_thresh 0.05, not 0.5'):
        predict_files(model[0], folder, tmp/'other', resume=True, **{**KW, 'score_thresh': 0.5})

CMD = 'import sys; from ssd_nbs.cli import predict_main; sys.argv[0] = "ssd-predict"; predict_main()'

def test_sigkill_half_way_then_resume(model, tmp):
    "A real `ssd-predict`, killed with SIGKILL once its detections.json has two batches; `--resume` completes the run"
    src = make_shapes(tmp/'many', n=120, size=64)/'JPEGImages'
    out = tmp/'killed'
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).parents[1])}
    args = [sys.executable, '-c', CMD, model[1], src, '--out', out, '--bs', 4, '--score-thresh', 0.05]
    p = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    n, t0 = 0, time.time()
    while p.poll() is None and time.time() - t0 < 240:
        try: n = len(_json(out)['images'])                                      # never half-written: atomic
        except FileNotFoundError: pass
        if n >= 8: break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    d = _json(out)
    assert 8 <= len(d['images']) < 120 and len(d['images']) % 4 == 0
    r = subprocess.run(list(map(str, args + ['--resume'])), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    d = _json(out)
    files = [o['file'] for o in d['images']]
    assert len(files) == 120 and len(set(files)) == 120 and files == sorted(files)

def test_unreadable_images_are_named_and_skipped_exit_2(model, folder, tmp, capsys, monkeypatch):
    bad = tmp/'bad'; bad.mkdir()
    for f in sorted(folder.iterdir())[:5]: (bad/f.name).write_bytes(f.read_bytes())
    (bad/'truncated.jpg').write_bytes((folder/'000000.jpg').read_bytes()[:300])
    (bad/'text.png').write_text('not an image')
    (bad/'empty.jpg').write_bytes(b'')
    code,out,err = main(capsys, monkeypatch, predict_main, model[1], bad, '--out', tmp/'bad_out', '--bs', 3)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ssd-predict: warning: skipped 3 of 8 images, not readable'), err
    for name in ('truncated.jpg', 'text.png', 'empty.jpg'): assert name in lines[0], err
    d = _json(tmp/'bad_out')
    assert len(d['images']) == 5 and sorted(Path(o['file']).name for o in d['skipped']) == ['empty.jpg', 'text.png', 'truncated.jpg']
    assert 'detections in 5 images' in out
    code,out,err = main(capsys, monkeypatch, predict_main, model[1], folder, '--out', tmp/'good_out')
    assert code == 0 and err == '', err

def test_no_readable_image_is_an_error_and_writes_nothing(model, tmp, capsys, monkeypatch):
    (tmp/'nothing').mkdir()
    for i in range(3): (tmp/'nothing'/f'{i}.jpg').write_bytes(b'\xff\xd8 no')
    code,out,err = main(capsys, monkeypatch, predict_main, model[1], tmp/'nothing', '--out', tmp/'nothing_out')
    assert code == 1 and err.startswith('ssd-predict: error: none of the 3 images is readable: ') and len(err.splitlines()) == 1, err
    assert not (tmp/'nothing_out').exists()

def test_large_photo_is_read_reduced_and_boxes_are_in_its_pixels(model, folder, tmp):
    big = tmp/'big.jpg'
    Image.open(folder/'000001.jpg').resize((4000, 3000)).save(big, quality=85)
    im,wh = read_image(big)
    assert wh == (4000, 3000) and im.size == (PIC, 768)
    r = predict_files(model[0], [big], tmp/'big_out', **{**KW, 'score_thresh': 0.})['images'][0]
    assert (r['width'], r['height']) == (4000, 3000) and r['boxes']
    assert all(0 <= b[0] <= b[2] <= 4000 and 0 <= b[1] <= b[3] <= 3000 for b in r['boxes'])
    assert max(b[2] for b in r['boxes']) > PIC                                  # pixels of the photo, not the picture
    with Image.open(tmp/'big_out'/r['picture']) as pic: assert pic.size == (PIC, 768)
    small = tmp/'small.png'; Image.open(folder/'000001.jpg').save(small)        # up to PIC pixels: read as it is
    assert read_image(small)[0].tobytes() == Image.open(small).convert('RGB').tobytes()

class Anything:  # an arbitrary object: what a pickle from a stranger holds
    def __init__(self): self.x = [1, 2]

@pytest.mark.parametrize('kind', ['pickle', 'torch_object', 'torch_module', 'text'])
def test_foreign_files_are_refused_without_unsafe_advice(model, folder, tmp, kind, capsys, monkeypatch):
    f = tmp/f'{kind}.pkl'
    if kind == 'pickle': f.write_bytes(pickle.dumps(Anything()))
    elif kind == 'torch_object': torch.save({'state_dict': Anything()}, f)
    elif kind == 'torch_module': torch.save(torch.nn.Linear(2, 2), f)
    else: f.write_text('hello')
    code,out,err = main(capsys, monkeypatch, predict_main, f, folder, '--out', tmp/'never')
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and f'{f}: not a model file written by ssd-train' in lines[0], err
    for bad in ('weights_only', 'trust', 'can still be loaded', 'safe_globals', 'False'): assert bad not in err, err
    if kind != 'text': assert 'not loaded' in err, err
    if kind == 'torch_module': assert 'torch.nn.modules.linear.Linear' in err, err
    assert not (tmp/'never').exists()

def test_export_command(model, tmp, capsys, monkeypatch):
    pytest.importorskip('onnx'); pytest.importorskip('onnxruntime')
    code,out,err = main(capsys, monkeypatch, export_main, model[1], '--max-det', 20)
    assert code == 0 and err == '', err
    import onnx
    meta = {p.key: p.value for p in onnx.load(tmp/'model.onnx').metadata_props}
    assert [json.loads(meta[k]) for k in ('score_thresh', 'nms_iou', 'max_det')] == [0.3, 0.5, 20]   # the config's, and 20
    assert json.loads(meta['classes']) == VOCAB
    code,out,err = main(capsys, monkeypatch, export_main, tmp/'model.onnx')
    assert code == 1 and 'model.onnx: not a model file written by ssd-train' in err and len(err.splitlines()) == 1, err
    monkeypatch.setitem(sys.modules, 'onnx', None)
    code,out,err = main(capsys, monkeypatch, export_main, model[1], '--onnx', tmp/'x.onnx')
    assert code == 1 and err == 'ssd-export: error: onnx is not installed: pip install -e ".[onnx]" (or pip install onnx onnxruntime)\n', err

def test_detections_are_those_recorded_bit_for_bit():
    """`tests/fixtures/model_v1_dets_exact.json` holds detections of `model_v1.pkl` on the three fixture images: a change
    of the preprocessing, the decoding or the post-processing that moves any float of them fails here"""
    from ssd_nbs.detector import load_detector
    fx = Path(__file__).parent/'fixtures'
    want = json.loads((fx/'model_v1_dets_exact.json').read_text())
    det = load_detector(fx/want['model'])
    got = det([Image.open(fx/o['file']) for o in want['images']], score_thresh=want['score_thresh'], max_det=want['max_det'])
    for w,g in zip(want['images'], got):
        assert (g['boxes'].tolist(), g['labels'], g['scores'].tolist()) == (w['boxes'], w['labels'], w['scores'])
    assert sum(len(o['labels']) for o in want['images']) == 60

"""The exported ONNX detector gives the PyTorch detector's answers: on a shapes model and a BCCD-sized one (320 px),
on real images of several sizes and on one with no detection; its post-processing is `decode_preds`'s; `predict_files`
(`ssd-predict`) writes the same detections with either engine; what a user can get wrong is a one-line `SSDError`."""
import json, re, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from torch import nn
from PIL import Image
from fastai.vision.all import set_seed

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from ssd_nbs.anchors import make_anchors, bbox_to_activ
from ssd_nbs.data import make_shapes, ssd_dls
from ssd_nbs.readers import voc_items, bccd_path
from ssd_nbs.body import tiny_resnet
from ssd_nbs.learner import ssd_learner
from ssd_nbs.loss import SSDLoss
from ssd_nbs.inference import decode_preds, PostProcess
from ssd_nbs.files import SSDError
from ssd_nbs.detector import Detector
from ssd_nbs.predict import predict_files
from ssd_nbs.deploy import (export_onnx, export_detector, OnnxDetector, SSDExport, NeedsExtra, EXPORT_FORMAT, OPSET, fold_pads,
                            quantize_onnx, onnx_map)

def _fit(dls, epochs, lr, **kw):
    learn = ssd_learner(dls, arch=tiny_resnet, pretrained=False, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    return learn

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    "A shapes model trained for real (a few seconds), its exported file and its images"
    torch.set_num_threads(1); set_seed(42)
    d = tmp_path_factory.mktemp('shapes')
    path = make_shapes(d/'data', n=600, size=64)
    learn = _fit(ssd_dls(voc_items(path), size=64, bs=32), 4, 2e-2, grids=(8,4,2,1), match_iou=0.3, nh=32, fine_ks=1)
    fn = export_onnx(learn.model, learn.loss_func.anchors, learn.dls.vocab, d/'shapes.onnx')
    sizes = [(64,64), (64,64), (256,192), (100,300), (64,64), (640,480), (64,64), (37,53)]
    ims = [Image.open(path/'JPEGImages'/f'{i:06d}.jpg').resize(sz) for i,sz in enumerate(sizes)]
    return learn, fn, ims

@pytest.fixture(scope='module')
def bccd(tmp_path_factory):
    "A BCCD-sized model (320 px, the BCCD recipe's anchors and head): one short epoch on 48 BCCD images"
    torch.set_num_threads(1); set_seed(42)
    try: p = bccd_path()
    except FileNotFoundError as e: pytest.skip(str(e))
    files,targets = voc_items(p, 'train')
    learn = _fit(ssd_dls((files[:48], targets[:48]), size=320, bs=8, valid_pct=0.25), 2, 1e-2, grids=(20,10,5,3,1),
                 match_iou=0.4, nh=64, stem_ks=3, fine_ks=3)
    fn = export_onnx(learn.model, learn.loss_func.anchors, learn.dls.vocab, tmp_path_factory.mktemp('bccd')/'bccd.onnx',
                     PostProcess.from_config(learn.model.cfg, score_thresh=0.2))
    test_files = voc_items(p, 'test')[0][:6]
    return learn, fn, [Image.open(f) for f in test_files]

GREY = Image.new('RGB', (120, 80), (128, 128, 128))

def assert_same(theirs, ours):
    "Same labels and count per image, scores to 1e-4, boxes to 0.01 pixel"
    assert len(theirs) == len(ours)
    for a,b in zip(theirs, ours):
        a,b = ({**o, 'boxes': torch.as_tensor(o['boxes']), 'scores': torch.as_tensor(o['scores'])} for o in (a, b))
        assert a['labels'] == b['labels']
        assert a['boxes'].shape == b['boxes'].shape and a['scores'].shape == b['scores'].shape
        assert torch.allclose(a['scores'], b['scores'], rtol=0, atol=1e-4)
        assert torch.allclose(a['boxes'], b['boxes'], rtol=0, atol=0.01)

def _check(learn, fn, ims, thresh):
    theirs = Detector(learn.model, learn.dls.vocab)(ims, thresh, 0.5, 100)
    ours = OnnxDetector(fn, threads=1)(ims)
    assert_same(theirs, ours)
    n = [len(o['labels']) for o in ours]
    assert sum(n) > 0 and n[-1] == 0, n                                   # detections, and none on the grey image
    stricter = Detector(learn.model, learn.dls.vocab)(ims, thresh+0.1, 0.5, 3)
    assert_same(stricter, OnnxDetector(fn)(ims, thresh+0.1, 0.5, 3))     # a higher threshold, fewer detections
    return n

def test_shapes_same_answers(shapes):
    learn,fn,ims = shapes
    print('shapes detections per image', _check(learn, fn, ims + [GREY], 0.3))

def test_bccd_same_answers(bccd):
    learn,fn,ims = bccd
    print('BCCD detections per image', _check(learn, fn, ims + [GREY], 0.2))

def test_batches_of_any_size(shapes):
    "Dynamic batch: each image alone, and all in batches of 3 and of 16, give the same detections"
    learn,fn,ims = shapes
    det = OnnxDetector(fn, threads=1)
    one = [det([im])[0] for im in ims]
    assert_same(one, det(ims, bs=3)); assert_same(one, det(ims*3, bs=16)[:len(ims)])

def test_limits(shapes):
    det = OnnxDetector(shapes[1])
    for kw in (dict(nms_iou=0.6), dict(score_thresh=0.2), dict(max_det=101)):
        with pytest.raises(SSDError, match='export the model again'): det([GREY], **kw)
    assert det.settings() == (0.3, 0.5, 100) and det.settings(0.4, 0.5, 7) == (0.4, 0.5, 7)

def test_export_detector_takes_the_config_settings(shapes, tmp_path):
    learn = shapes[0]
    det = Detector.from_learner(learn)
    fn = export_detector(det, tmp_path/'d.onnx', nms_iou=0.45)
    c = learn.model.cfg
    assert OnnxDetector(fn).settings() == (c.score_thresh, 0.45, c.max_det)

def test_predict_files_same_with_both_engines(shapes, tmp_path):
    "The pictures and detections.json of `ssd-predict --engine onnx` are those of the PyTorch engine"
    learn,fn,ims = shapes
    (tmp_path/'ims').mkdir()
    for i,im in enumerate(ims + [GREY]): im.save(tmp_path/'ims'/f'{i}.png')
    kw = dict(bs=3, progress=False, score_thresh=0.3, max_det=50)
    a = predict_files(Detector.from_learner(learn), tmp_path/'ims', tmp_path/'torch', **kw)
    b = predict_files(fn, tmp_path/'ims', tmp_path/'onnx', engine='onnx', **kw)
    assert len(a['images']) == len(b['images']) == len(ims) + 1 and sum(len(o['labels']) for o in b['images']) > 0
    for p,q in zip(a['images'], b['images']):
        assert {k: p[k] for k in ('file', 'width', 'height', 'picture', 'labels')} == {k: q[k] for k in ('file', 'width', 'height', 'picture', 'labels')}
        assert p['scores'] == pytest.approx(q['scores'], abs=2e-4)
        assert torch.allclose(torch.tensor(p['boxes']).view(-1, 4), torch.tensor(q['boxes']).view(-1, 4), atol=0.02)
        assert (tmp_path/'onnx'/q['picture']).is_file()
    assert {k: v for k,v in b.items() if k != 'images'} == dict(model=str(fn), engine='onnx', score_thresh=0.3, nms_iou=0.5,
                                                                 max_det=50, skipped=[])

def test_metadata(shapes):
    learn,fn,_ = shapes
    m = onnx.load(fn)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta['format'] == EXPORT_FORMAT and json.loads(meta['opset']) == OPSET == m.opset_import[0].version
    assert json.loads(meta['classes']) == list(learn.dls.vocab) and json.loads(meta['size']) == 64
    assert (meta['onnx'], meta['onnxruntime']) == (onnx.__version__, ort.__version__)
    assert [json.loads(meta[k]) for k in ('score_thresh', 'nms_iou', 'max_det')] == [0.3, 0.5, 100]
    assert [i.name for i in m.graph.input] == ['images'] and [o.name for o in m.graph.output] == ['boxes', 'scores', 'labels', 'num_dets']
    onnx.checker.check_model(m, full_check=True)

class Given(nn.Module):
    "A stand-in for an `SSDModel` whose activations are read from its input: any activations, exactly"
    size = 64
    def __init__(self, n_anc, n_cls): super().__init__(); self.a,self.c = n_anc,n_cls
    def forward(self, x):
        f = x.flatten(1)
        return f[:,:self.a*4].reshape(-1,self.a,4), f[:,self.a*4:self.a*(4+self.c+1)].reshape(-1,self.a,self.c+1)

@pytest.mark.parametrize('thresh,iou,max_det', [(0.3,0.5,100), (0.3,0.5,7), (0.6,0.3,100), (0.2,0.7,50), (0.05,0.5,2000)])
def test_postprocess_is_decode_preds(tmp_path, thresh, iou, max_det):
    """On the same activations, the graph keeps what `decode_preds` keeps, in the same order: overlapping boxes, 50 copies
    of one box, more than 1000 candidates (`batched_nms`'s other path), an image with no candidate.
    The scores are distinct and 4e-4 apart: the two runtimes' sigmoids differ in the last bit, so an exact tie in one
    need not be a tie in the other."""
    torch.set_num_threads(1)
    anc = make_anchors((8,4,2,1), (0.7,1,1.3), ((1,1),(1,.5),(.5,1)))
    a,c = len(anc),3
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 3, 64, 64); f = x.view(4, -1)
    act = torch.randn(4, a, 4, generator=g)*0.5                           # (4, a, 4) box activations
    i50 = torch.randperm(a, generator=g)[:50]
    act[:,i50] = bbox_to_activ(torch.tensor([-0.3, -0.2, 0.4, 0.5]).expand(50, 4), anc[i50])   # one box, 50 times
    s = torch.stack([torch.randperm(a*c, generator=g) for _ in range(4)]).float()/(a*c)*0.98 + 0.01
    f[:,:a*4] = act.view(4, -1)
    f[:,a*4:a*8] = torch.cat([torch.zeros(4, a, 1), torch.logit(s).view(4, a, c)], -1).view(4, -1)   # background first
    f[3,a*4:] = -10.                                                      # nothing above any threshold
    model = Given(a, c)
    fn = export_onnx(model, anc, ['#na#', 'a', 'b', 'c'], tmp_path/'given.onnx', PostProcess(thresh, iou, max_det))
    boxes,scores,labels,num = (torch.from_numpy(o) for o in OnnxDetector(fn).run(x.numpy()))
    rb,rl,rs = decode_preds(*SSDLoss(anc).activation(model(x)), thresh, iou, max_det)
    assert num[3] == 0 and (num[:3] > 0).all()
    torch.testing.assert_close(num, (rl > 0).sum(1))
    torch.testing.assert_close(labels, rl, rtol=0, atol=0)
    torch.testing.assert_close(scores, rs, rtol=0, atol=1e-6)
    torch.testing.assert_close(boxes, torch.where(rl[...,None] > 0, (rb+1)/2, 0.), rtol=0, atol=1e-6)
    with torch.no_grad(): eb,es,el,en = SSDExport(model, anc, PostProcess(thresh, iou, max_det))(x)   # the module, in PyTorch
    torch.testing.assert_close(el, rl, rtol=0, atol=0); torch.testing.assert_close(es, rs, rtol=0, atol=0)

def test_missing_onnxruntime_says_how_to_install(shapes, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(ImportError) as e: OnnxDetector(shapes[1])       # an ImportError, and an SSDError
    assert isinstance(e.value, SSDError) and 'pip install -e ".[onnx]"' in str(e.value) and '\n' not in str(e.value)
    code,err = _predict(monkeypatch, capsys, shapes[1], tmp_path, '--engine', 'onnx')
    assert (code, err) == (1, 'ssd-predict: error: onnxruntime is not installed: pip install -e ".[onnx]" (or pip install onnx onnxruntime)\n')

def _predict(monkeypatch, capsys, model, tmp_path, *args): # (exit code, stderr) of ssd-predict, in this process
    from ssd_nbs.cli import predict_main
    GREY.save(tmp_path/'grey.png')
    monkeypatch.setattr(sys, 'argv', ['ssd-predict', str(model), str(tmp_path/'grey.png'), '--out', str(tmp_path/'out'), *args])
    capsys.readouterr()
    try: predict_main(); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err

def test_not_an_export(tmp_path, shapes, monkeypatch, capsys):
    m = onnx.load(shapes[1]); del m.metadata_props[:]
    onnx.save(m, tmp_path/'bare.onnx')
    with pytest.raises(SSDError, match='bare.onnx: an ONNX file, but not one written by export_onnx'): OnnxDetector(tmp_path/'bare.onnx')
    (tmp_path/'model.safetensors').write_bytes(b'not onnx at all')
    for f,want in ((tmp_path/'model.safetensors', 'model.safetensors: not an ONNX file (ssd-export writes one)'),
                   (tmp_path/'missing.onnx', 'missing.onnx: no such model file')):
        code,err = _predict(monkeypatch, capsys, f, tmp_path, '--engine', 'onnx')
        assert code == 1 and len(err.splitlines()) == 1 and want in err, err
    code,err = _predict(monkeypatch, capsys, shapes[1], tmp_path)           # an .onnx file, the torch engine
    assert code == 1 and 'error: --engine: ' in err and 'shapes.onnx: an ONNX file: run it with the onnx engine' in err, err
    assert not (tmp_path/'out').exists()

def test_export_keeps_the_mode(tmp_path, shapes):
    "`torch.onnx.export` puts the module it is given back in its mode: the exported model must stay in its own"
    model = shapes[0].model
    for mode in (True, False):
        model.train(mode); export_onnx(model, shapes[0].loss_func.anchors, shapes[0].dls.vocab, tmp_path/'m.onnx')
        assert model.training == mode
    model.eval()

PLAIN = """import sys
for m in ('ssd_nbs', 'fastai', 'torch', 'torchvision'): sys.modules[m] = None       # none of them: import fails
import json, numpy as np, onnxruntime as ort
from PIL import Image

sess = ort.InferenceSession(sys.argv[1])
meta = sess.get_modelmeta().custom_metadata_map
size, classes = int(meta['size']), json.loads(meta['classes'])
mean, std = (np.array(json.loads(meta[k]), np.float32) for k in ('mean', 'std'))

res = []
for f in sys.argv[2:]:
    im = Image.open(f)
    x = np.asarray(im.convert('RGB').resize((size, size), Image.BILINEAR), np.float32) / 255
    boxes, scores, labels, n = sess.run(None, {'images': ((x - mean) / std).transpose(2, 0, 1)[None]})
    w, h = im.size
    res.append(dict(boxes=(boxes[0, :n[0]] * [w, h, w, h]).tolist(), labels=[classes[l] for l in labels[0, :n[0]]],
                    scores=scores[0, :n[0]].tolist()))
print(json.dumps(res))"""

def test_plain_onnxruntime_without_ssd_nbs(bccd, tmp_path):
    "The README's few lines (numpy, PIL, onnxruntime; no ssd_nbs, fastai or torch) give `OnnxDetector`'s detections"
    import subprocess
    learn,fn,ims = bccd
    files = [o.filename for o in ims[:3]]
    r = subprocess.run([sys.executable, '-c', PLAIN, str(fn), *files], capture_output=True, text=True,
                       env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    plain = [dict(boxes=torch.tensor(o['boxes']).reshape(-1, 4), labels=o['labels'], scores=torch.tensor(o['scores']))
             for o in json.loads(r.stdout)]                              # (the graph's boxes are in [0,1]: no clamp)
    assert_same(OnnxDetector(fn)([Image.open(f) for f in files]), plain)

BLOCK = """import sys
class Blocked:
    "Make torch, torchvision and fastai unimportable"
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'fastai'): raise ImportError(f'{name}: blocked')
sys.meta_path.insert(0, Blocked())
from ssd_nbs.cli import predict_main
sys.argv[0] = 'ssd-predict'
try: predict_main()
finally: print(sorted({'torch', 'torchvision', 'fastai', 'matplotlib'} & set(sys.modules)), file=sys.stderr)"""

def test_onnx_engine_needs_no_torch(shapes, tmp_path):
    "`ssd-predict --engine onnx` works where torch, torchvision and fastai cannot be imported, and writes the same detections"
    import subprocess
    learn,fn,ims = shapes
    (tmp_path/'ims').mkdir()
    for i,im in enumerate(ims[:3]): im.save(tmp_path/'ims'/f'{i}.png')
    r = subprocess.run([sys.executable, '-c', BLOCK, str(fn), str(tmp_path/'ims'), '--engine', 'onnx', '--out', str(tmp_path/'out')],
                       capture_output=True, text=True, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == '[]', r.stderr[-2000:]
    got = json.loads((tmp_path/'out'/'detections.json').read_text())
    want = predict_files(fn, tmp_path/'ims', tmp_path/'here', engine='onnx', progress=False)
    assert got['images'] == want['images'] and len(got['images']) == 3

NO_FASTAI = """import sys
class Blocked:
    "Make fastai unimportable"
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'fastai': raise ImportError(f'{name}: blocked')
sys.meta_path.insert(0, Blocked())
from ssd_nbs.cli import predict_main, export_main
cmd = sys.argv.pop(1); sys.argv[0] = cmd
try: dict(predict=predict_main, export=export_main)[cmd]()
finally: print(sorted({m.split('.')[0] for m in sys.modules} & {'fastai', 'pandas', 'timm'}), file=sys.stderr)"""

def test_torch_engine_needs_no_fastai(shapes, tmp_path):
    "`ssd-predict` with PyTorch and `ssd-export` work where fastai cannot be imported: a `Detector` is PyTorch and the model code"
    import subprocess
    learn,fn,ims = shapes
    Detector.from_learner(learn).save(tmp_path/'model.safetensors')
    (tmp_path/'ims').mkdir()
    for i,im in enumerate(ims[:3]): im.save(tmp_path/'ims'/f'{i}.png')
    env = {**__import__('os').environ, 'OMP_NUM_THREADS': '1'}
    def run(*args):
        r = subprocess.run([sys.executable, '-c', NO_FASTAI, *map(str, args)], capture_output=True, text=True, env=env)
        assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == '[]', r.stderr[-2000:]
    run('predict', tmp_path/'model.safetensors', tmp_path/'ims', '--out', tmp_path/'out')
    got = json.loads((tmp_path/'out'/'detections.json').read_text())
    want = predict_files(learn, tmp_path/'ims', tmp_path/'here', progress=False)
    assert got['images'] == want['images'] and sum(len(o['labels']) for o in got['images']) > 0
    run('export', tmp_path/'model.safetensors', '--onnx', tmp_path/'m.onnx')
    assert_same(OnnxDetector(tmp_path/'m.onnx')(ims[:3]), OnnxDetector(fn)(ims[:3]))

def test_export_int8_and_val_need_no_fastai(shapes, tmp_path):
    """`ssd-export --int8` (calibrated on the validation images of the model's run, read by `readers`) and `--val` (scored by
    `metrics`) work where fastai cannot be imported"""
    import subprocess
    learn,fn,ims = shapes
    run = tmp_path/'run'; run.mkdir()
    Detector.from_learner(learn).save(run/'model.safetensors')
    (run/'metrics.json').write_text(json.dumps(dict(settings=dict(data=str(fn.parent/'data'), format='auto', seed=42))))
    r = subprocess.run([sys.executable, '-c', NO_FASTAI, 'export', str(run/'model.safetensors'), '--int8', '--n-calib', '16',
                        '--val', str(fn.parent/'data')], capture_output=True, text=True,
                       env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == '[]', r.stderr[-2000:]
    assert 'int8, calibrated on 16 images' in r.stdout and (run/'model_int8.onnx').is_file(), r.stdout
    m = re.search(r'mAP@0.5 on (\d+) validation images of .*: float ([\d.]+), int8 ([\d.]+)', r.stdout)
    assert m and int(m[1]) == len(voc_items(fn.parent/'data', 'val')[0]) and float(m[2]) > 0, r.stdout

@pytest.mark.parametrize('recipe', ['shapes', 'bccd'])
def test_same_weights_as_with_fastai_layers(recipe, monkeypatch):
    "Our `ConvLayer`, `ResBlock` and dummy passes make, from a seed, the weights that fastai's made: names, order, values"
    from dataclasses import replace
    import fastai.layers as fl
    from fastai.callback.hook import dummy_eval
    import ssd_nbs.body, ssd_nbs.model
    from ssd_nbs.config import RECIPES
    from ssd_nbs.detector import build_detector
    cfg = replace(RECIPES[recipe], size=128, grids=None) if recipe == 'bccd' else RECIPES[recipe]
    def weights(): torch.manual_seed(0); return build_detector(cfg, ['#na#', 'a', 'b']).model.state_dict()
    ours = weights()
    monkeypatch.setattr(ssd_nbs.body, 'ConvLayer', fl.ConvLayer); monkeypatch.setattr(ssd_nbs.model, 'ConvLayer', fl.ConvLayer)
    monkeypatch.setattr(ssd_nbs.body, 'ResBlock', lambda ni, nf, stride=1: fl.ResBlock(1, ni, nf, stride=stride))
    monkeypatch.setattr(ssd_nbs.model, '_dummy_eval', lambda body, size: dummy_eval(body, (size, size)))
    theirs = weights()
    assert list(ours) == list(theirs) and all(torch.equal(v, theirs[k]) for k,v in ours.items())

def test_optimised_graph_kept(shapes, tmp_path, monkeypatch):
    "The graph onnxruntime optimised is kept and read back: the same detections; a damaged copy is made again"
    import ssd_nbs.predict
    learn,fn,ims = shapes
    monkeypatch.setattr(ssd_nbs.predict, 'ONNX_CACHE', tmp_path/'cache')
    first = OnnxDetector(fn, threads=1)(ims)
    kept = list((tmp_path/'cache').iterdir())
    assert len(kept) == 1 and kept[0].suffix == '.onnx'
    assert_same(first, OnnxDetector(fn, threads=1)(ims))                  # from the kept graph
    kept[0].write_bytes(b'damaged')
    assert_same(first, OnnxDetector(fn, threads=1)(ims))
    assert kept[0].stat().st_size > 1000 and len(list((tmp_path/'cache').iterdir())) == 1

def test_fold_pads_exact(tmp_path):
    "timm's same-padding convs (EfficientNet-Lite): their Pads fold into the convs, the outputs unchanged to the bit"
    from dataclasses import replace
    from ssd_nbs.config import RECIPES
    from ssd_nbs.detector import build_detector
    torch.manual_seed(0)
    det = build_detector(replace(RECIPES['data'], size=96, pretrained=False), ['#na#', 'a', 'b'])
    fn = export_onnx(det.model, det.anchors.boxes, det.vocab, tmp_path/'lite.onnx', PostProcess(0.05, 0.5, 100))
    assert not [n for n in onnx.load(fn).graph.node if n.op_type == 'Pad']
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad(): b,s,l,n = SSDExport(det.model, det.anchors.boxes, PostProcess(0.05, 0.5, 100))(x)
    ob,os_,ol,on = OnnxDetector(fn, threads=1).run(x.numpy())
    assert (ol == l.numpy()).all() and np.allclose(os_, s.numpy(), atol=1e-5) and np.allclose(ob, b.numpy(), atol=1e-5)

def test_int8(shapes, tmp_path):
    "The int8 file keeps the metadata, is smaller, and scores about as the float one"
    learn,fn,ims = shapes
    files,targets = voc_items(fn.parent/'data')
    q = quantize_onnx(fn, tmp_path/'q.onnx', files[:32])
    assert OnnxDetector(fn).meta.items() <= OnnxDetector(q).meta.items() and q.stat().st_size < fn.stat().st_size
    assert any(n.op_type == 'QuantizeLinear' for n in onnx.load(q).graph.node)
    valid = (files[-100:], targets[-100:])
    f32,i8 = onnx_map(fn, valid), onnx_map(q, valid)
    assert f32 > 0 and abs(f32 - i8) < 0.02, (f32, i8)                   # a rough model (mAP at the file's threshold 0.3)
    with pytest.raises(SSDError, match='no image to calibrate on'): quantize_onnx(fn, tmp_path/'q2.onnx', [])

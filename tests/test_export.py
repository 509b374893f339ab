"A saved learner: `learn.export` -> `load_learner` -> `predict`, in a fresh process, gives the live learner's boxes."
import json, subprocess, sys, warnings
import pytest
import torch
from fastai.vision.all import set_seed

from ssd_nbs.data import make_shapes, ssd_dls

from ssd_nbs.readers import voc_items
from ssd_nbs.learner import ssd_learner
from ssd_nbs.body import tiny_cnn
from ssd_nbs.inference import predict

LOAD = """import json, sys, warnings; warnings.simplefilter('ignore')
from fastai.learner import load_learner
from ssd_nbs.inference import predict
learn = load_learner(sys.argv[1])
res = [predict(learn, f, score_thresh=0.005, max_det=20) for f in sys.argv[2:]]
print(json.dumps([dict(boxes=r['boxes'].tolist(), scores=r['scores'].tolist(), labels=r['labels']) for r in res]))"""

def test_export_load_learner_predict_in_a_fresh_process(tmp_path):
    path = make_shapes(tmp_path/'shapes', n=12, size=64)
    set_seed(0)
    dls = ssd_dls(voc_items(path), size=64, bs=4)
    learn = ssd_learner(dls, arch=tiny_cnn, pretrained=False, grids=(2,1))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    learn.export(tmp_path/'export.pkl')
    assert sorted(o.name for o in tmp_path.iterdir()) == ['export.pkl', 'shapes']       # written in one step
    files = [str(path/'JPEGImages'/f'{i:06d}.jpg') for i in (0, 5)]
    live = [predict(learn, f, score_thresh=0.005, max_det=20) for f in files]
    r = subprocess.run([sys.executable, '-c', LOAD, str(tmp_path/'export.pkl'), *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = json.loads(r.stdout)
    assert sum(len(o['boxes']) for o in live) > 0
    for a,b in zip(live, loaded):
        assert a['labels'] == b['labels']
        assert torch.allclose(a['boxes'], torch.tensor(b['boxes']).reshape(-1, 4), atol=1e-5)
        assert torch.allclose(a['scores'], torch.tensor(b['scores']), atol=1e-5)

"""A first BCCD run with a pretrained body: `ssd-train`'s BCCD recipe (`09_bccd`) on the body of `ssd_nbs.body`.

    python bench/bccd_body.py                        # efficientnet_lite0 cut at stride 16, 10 epochs
    python bench/bccd_body.py --quick                # a check that it runs

A pretrained body is trained as `ssd-train` trains one (`fit_run`): one epoch with the body frozen (its batchnorms
train), then all of it with `slice(lr/200, lr/2)`. Prints and writes the mAP@0.5 on BCCD's test split and the time."""
import sys, time, json, argparse
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchutil import machine_info
import torch
from fastai.vision.all import set_seed
from fastai.callback.channelslast import ChannelsLast
from ssd_nbs.config import BCCD
from ssd_nbs.data import ssd_dls, bccd_path
from ssd_nbs.layouts import data_items
from ssd_nbs.learner import ssd_learner
from ssd_nbs.loss import LossPart
from ssd_nbs.metrics import MeanAP
from ssd_nbs.train import fit_run

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--arch', default='efficientnet_lite0'); p.add_argument('--stride', type=int, default=16)
p.add_argument('--no-pretrained', dest='pretrained', action='store_false')
p.add_argument('--epochs', type=int, default=10); p.add_argument('--lr', type=float, default=1e-2)
p.add_argument('--bs', type=int, default=8); p.add_argument('--size', type=int, default=320)
p.add_argument('--grids', default='20,10,5,3,1'); p.add_argument('--nh', type=int, default=64)
p.add_argument('--n', type=int, default=0, help='only the first n training and n/2 test images (0: all)')
p.add_argument('--quick', action='store_true', help='16 images, 1 epoch at 128 px: a check that it runs')
p.add_argument('--threads', type=int, default=1)
p.add_argument('--out', default=None, help='JSON file for the results')
a = p.parse_args()
if a.quick: a.n,a.epochs,a.size,a.grids = 16,1,128,'8,4,2,1'
torch.set_num_threads(a.threads); set_seed(42); t0 = time.time()
tr,va = data_items(bccd_path(), 'voc', None, 42)
if a.n: tr,va = (tr[0][:a.n], tr[1][:a.n]), (va[0][:a.n//2], va[1][:a.n//2])
cfg = replace(BCCD, arch=a.arch, pretrained=a.pretrained, stride=a.stride, size=a.size, grids=a.grids, nh=a.nh,
              epochs=a.epochs, lr=a.lr, bs=a.bs)                          # the BCCD recipe on another body
dls = ssd_dls(tr, va, size=cfg.size, bs=cfg.bs, cache=True)
learn = ssd_learner(dls, cfg, cbs=[ChannelsLast()], metrics=[LossPart('bbox'), LossPart('clas'), MeanAP()])
fit_run(learn, cfg.epochs, cfg.lr, learn.model.cfg.pretrained)
hist = [dict(zip(learn.recorder.metric_names[1:-1], map(float, v))) for v in learn.recorder.values]
res = dict(settings=vars(a), n_train=len(tr[0]), n_valid=len(va[0]), mAP=hist[-1]['mAP'] if hist else None,
           history=hist, seconds=round(time.time()-t0), machine=machine_info())
print(json.dumps({k: res[k] for k in ('mAP', 'seconds', 'n_train', 'n_valid')}))
if a.out: Path(a.out).write_text(json.dumps(res, indent=1))

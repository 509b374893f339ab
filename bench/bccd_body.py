"""BCCD with a recipe of `ssd_nbs.config` (default: `BCCD`, EfficientNet-Lite0 pretrained), any of its settings changed.

    python bench/bccd_body.py                        # the BCCD recipe as `ssd-train --recipe bccd` trains it
    python bench/bccd_body.py --stride 16 --grids 20,10,5,3,1 --zooms 0.7,1,1.3 --body-lr-div 200 --head-lr-div 2
                                                     # the sixth round's first try (fastai's `fine_tune` rates)
    python bench/bccd_body.py --recipe bccd_scratch  # tiny_resnet from random weights
    python bench/bccd_body.py --quick                # a check that it runs

Trains as `ssd-train` does (`fit_run`): a pretrained body gets `--freeze-epochs` epochs with the body frozen (its
batchnorms train), then all of it at `slice(lr/body_lr_div, lr/head_lr_div)`. Prints and writes the mAP@0.5 on
BCCD's test split (overall and per class), the wall and process CPU seconds, and those at the end of each epoch."""
import sys, time, json, argparse
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchutil import machine_info
import torch
from torch import nn
from fastai.vision.all import set_seed, Callback
from fastai.callback.channelslast import ChannelsLast
from ssd_nbs.config import RECIPES
from ssd_nbs.data import ssd_dls
from ssd_nbs.readers import bccd_path
from ssd_nbs.readers import data_items
from ssd_nbs.learner import ssd_learner, LossPart
from ssd_nbs.learner import MeanAP
from ssd_nbs.train import fit_run
from ssd_nbs.check import refit_anchors

KEYS = ('arch', 'pretrained', 'stride', 'size', 'grids', 'zooms', 'nh', 'epochs', 'lr', 'bs', 'freeze_epochs', 'body_lr_div',
        'head_lr_div', 'gamma', 'match_iou')

class FreezeAt(Callback):
    "The body's first `n` children (stem + 3 blocks: 6) without gradients, their BatchNorms in eval, in every epoch"
    order = 1  # after `TrainEvalCallback` (-10), which puts the model in train mode
    def __init__(self, n:int=6): self.n = n
    def before_train(self):
        for l in list(self.learn.model.body)[:self.n]:          # after fastai's `freeze`/`unfreeze` (`fit_run`)
            l.requires_grad_(False)
            for m in l.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm): m.eval()

def options(doc:str=__doc__)->argparse.ArgumentParser:
    "The options: a recipe and any of its settings, the images, the seed"
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--recipe', default='bccd', help='the recipe of ssd_nbs.config.RECIPES the other options change')
    for o,t in [('arch',str), ('stride',int), ('epochs',int), ('lr',float), ('bs',int), ('size',int), ('grids',str), ('nh',int),
                ('zooms',str), ('freeze_epochs',int), ('body_lr_div',float), ('head_lr_div',float),
                ('gamma',float), ('match_iou',float)]:
        p.add_argument('--'+o.replace('_', '-'), type=t, default=None, help="default: the recipe's")
    p.add_argument('--pretrained', action=argparse.BooleanOptionalAction, default=None, help="default: the recipe's")
    p.add_argument('--fit-anchors', action='store_true', help="zooms and ratios fitted to the training boxes (ssd-train's)")
    p.add_argument('--n', type=int, default=0, help='only the first n training images (0: all)')
    p.add_argument('--n-valid', type=int, default=0, help='only the first n test images (0: all)')
    p.add_argument('--quick', action='store_true', help='16 images, 2 epochs at 128 px: a check that it runs')
    p.add_argument('--seed', type=int, default=42, help='set_seed before the model is made: initial weights, batches')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default=None, help='JSON file for the results')
    return p

def parse(p:argparse.ArgumentParser):
    a = p.parse_args()
    if a.quick: a.n,a.n_valid,a.epochs,a.size,a.grids = 16,8,2,128,'16,8,4,2,1'
    return a

def run(a, cbs=())->dict:
    "Train the recipe `a` asks for (`options`) on BCCD trainval with the extra callbacks `cbs`; score it on test"
    torch.set_num_threads(a.threads); set_seed(a.seed); t0,c0 = time.time(),time.process_time()
    tr,va = data_items(bccd_path(), 'voc', None, 42)
    if a.n: tr = tr[0][:a.n], tr[1][:a.n]
    if a.n_valid: va = va[0][:a.n_valid], va[1][:a.n_valid]
    cfg = replace(RECIPES[a.recipe], **{k: getattr(a, k) for k in KEYS if getattr(a, k) is not None})  # the recipe, changed
    if a.fit_anchors: cfg = refit_anchors(cfg, tr, va)
    dls = ssd_dls(tr, va, size=cfg.size, bs=cfg.bs, cache=True)
    times,hist = [],[]
    class EpochTimes(Callback):
        "The progress table's row, and the wall and CPU seconds since the start of training, after every epoch"
        order = 60  # after `Recorder` (50)
        def after_epoch(self):
            times.append((round(time.time()-t1, 1), round(time.process_time()-c1, 1)))
            hist.append(dict(zip(self.recorder.metric_names[1:-1], map(float, self.recorder.values[-1]))))
    learn = ssd_learner(dls, cfg, cbs=[ChannelsLast(), *cbs], metrics=[LossPart('bbox'), LossPart('clas'), MeanAP()])
    t1,c1 = time.time(),time.process_time()
    fit_run(learn, cfg, cbs=EpochTimes())                                   # as `ssd-train` trains
    train_s = (round(time.time()-t1), round(time.process_time()-c1))
    mm = next(m for m in learn.metrics if isinstance(m, MeanAP))
    per_class = {str(learn.dls.vocab[int(k)]): round(float(v), 4) for k,v in mm.per_class.items()}
    return dict(settings=dict(vars(a)), config=json.loads(json.dumps(cfg.to_dict())), n_train=len(tr[0]), n_valid=len(va[0]),
                mAP=hist[-1]['mAP'] if hist else None, per_class=per_class, zooms=cfg.zooms, ratios=cfg.ratios,
                grids=learn.model.cfg.grids, train_seconds=train_s[0], train_cpu_seconds=train_s[1], seconds=round(time.time()-t0),
                cpu_seconds=round(time.process_time()-c0), epoch_seconds=times, history=hist, machine=machine_info())

if __name__ == '__main__':
    a = parse(options())
    res = run(a)
    print(json.dumps({k: res[k] for k in ('mAP', 'per_class', 'seconds', 'cpu_seconds', 'train_seconds', 'n_train', 'n_valid')}))
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1))

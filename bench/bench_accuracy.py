#!/usr/bin/env python
"""Accuracy on a fixed CPU budget: ssd_nbs (the `ssd-train` recipe for the data set) against torchvision's
`ssdlite320_mobilenet_v3_large`, both from random weights, trained on the same images (the same fastai DataLoader,
same augmentation, same input size) for the same wall-clock budget each, then scored by the project's `mean_ap`
(mAP@0.5, and AP per class) on the same test images.

    python bench/bench_accuracy.py --data bccd --budget 900 [--json out.json]     # the measured run: 2 x 15 minutes
    python bench/bench_accuracy.py --data shapes --budget 120 [--json out.json]   # 2 x 2 minutes
    python bench/bench_accuracy.py --quick                                        # a 20 s check that all of it runs

Each model trains with a one-cycle schedule stretched over the budget (warm up for 25% of the time, then anneal), so
that it ends annealed whenever the budget ends; the budget counts data loading and every step, not the evaluation.
ssd_nbs: fastai `Learner` from `ssd_learner`, Adam, the recipe's learning rate. SSDlite: its own training loss (the
model in train mode), and `--tv-opt sgd` (default: torchvision's reference recipe scaled to the batch size: SGD,
momentum 0.9, weight decay 4e-5, lr 0.15 * bs / 192) or `--tv-opt adamw` (AdamW, lr 1e-3, weight decay 4e-5); its
own post-processing for the predictions (score threshold lowered to 0.01, 100 detections per image). BCCD's images are
squished to the input size once, before the clock starts, for both models.
"""
from __future__ import annotations
import math
from dataclasses import replace
from benchutil import *
import torch, numpy as np
from torch import Tensor
from PIL import Image
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from fastai.vision.all import (ParamScheduler, Callback, CancelFitException, CancelValidException, combined_cos, set_seed,
                               imagenet_stats)
from ssd_nbs.data import ssd_dls
from ssd_nbs.readers import voc_items, bccd_path
from ssd_nbs.learner import ssd_learner
from ssd_nbs.inference import detections, PostProcess
from ssd_nbs.metrics import mean_ap
from ssd_nbs.config import SHAPES, BCCD_SCRATCH
from ssd_nbs.readers import shapes_data, data_items, cache_dir

# the recipes of `ssd-train`, from ssd_nbs.config; the BCCD runs of bench/results/ kept `ssd_learner`'s old dropout
# of 0.1 (ssd-train trains with 0), written out here
RECIPES = dict(shapes=replace(SHAPES, pretrained=False), bccd=replace(BCCD_SCRATCH, drop=0.1))

# ---------------------------------------------------------------------------------------------------------------------
# data
def squished_copy(items, size:int, dest:Path)->tuple:
    "The images of `items` squished to `size` x `size` (as `ssd_dls` does) into `dest`, once; boxes scaled to match"
    dest.mkdir(parents=True, exist_ok=True)
    files,targets = [],[]
    for f,(boxes,labels) in zip(*items):
        out = dest/(Path(f).stem + '.jpg')
        with Image.open(f) as im:
            w,h = im.size
            if not out.exists(): im.convert('RGB').resize((size, size), Image.BILINEAR).save(out, quality=95)
        s = np.array([size/w, size/h, size/w, size/h])
        files.append(out); targets.append(([list(np.asarray(b)*s) for b in boxes], list(labels)))
    return files, targets

def load_data(name:str, quick:bool):
    "(train items, test items, recipe) of the data set `name`"
    r = RECIPES[name]
    if name == 'bccd':
        p = bccd_path()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')                                    # BCCD's dirty boxes, reported by 01_data
            tr,te = voc_items(p, 'trainval'), voc_items(p, 'test')
        d = cache_dir()/f"bench_bccd_{r.size}px"
        tr,te = squished_copy(tr, r.size, d), squished_copy(te, r.size, d)
    else: tr,te = data_items(shapes_data(size=r.size))                       # ssd-train's shapes (12,000 images)
    if quick:                                                                  # a few images: it only has to run
        tr,te = (tr[0][:64], tr[1][:64]), (te[0][:32], te[1][:32])
        if name == 'bccd': r = replace(r, size=128, grids=(8,4,2,1))
    return tr, te, r

# ---------------------------------------------------------------------------------------------------------------------
# time budget: one-cycle over the wall-clock time
LR_SCHED = lambda lr: combined_cos(0.25, lr/25, lr, lr/1e5)                   # fastai's fit_one_cycle, over [0, 1]
MOM_SCHED = combined_cos(0.25, 0.95, 0.85, 0.95)

class TimeBudget(ParamScheduler):
    "fastai's one-cycle schedule over `budget` seconds of wall-clock time instead of a number of epochs; no validation"
    order = 60
    def __init__(self, budget:float, lr:float):
        super().__init__({'lr': LR_SCHED(lr), 'mom': MOM_SCHED})
        self.budget,self.iters = budget,0
    def before_fit(self):
        super().before_fit(); self.t0 = time.perf_counter()
    def frac(self): return (time.perf_counter()-self.t0)/self.budget
    def before_batch(self):
        if self.training: self._update_val(min(self.frac(), 1.))
    def after_batch(self):
        self.iters += 1
        if self.frac() >= 1: raise CancelFitException()
    def before_validate(self): raise CancelValidException()

# ---------------------------------------------------------------------------------------------------------------------
# ssd_nbs
def train_ours(dls, r:dict, budget:float)->tuple:
    learn = ssd_learner(dls, r, metrics=[])
    cb = TimeBudget(budget, r.lr)
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(10**6, cbs=[cb])
    t = time.perf_counter()-t
    losses = [float(o) for o in learn.recorder.losses]
    return learn, dict(iters=cb.iters, seconds=t, images=cb.iters*dls.train.bs, last_losses=float(np.mean(losses[-20:])))

def preds_ours(learn, dl, size:int, thresh:float=0.01):
    m,lf = learn.model.eval(),learn.loss_func
    preds,targs = [],[]
    with torch.no_grad():
        for xb,bb,lb in dl:
            preds += detections(m(xb), lf.anchors, PostProcess(thresh, 0.5, 100), sizes=[(size, size)]*len(xb))
            targs += targets_px(bb, lb, size)
    return preds, targs

def px(b:Tensor, size:int)->Tensor: return (b.as_subclass(Tensor)+1)/2*size    # [-1,1] -> pixels
def targets_px(bb, lb, size):
    bb,lb = bb.as_subclass(Tensor), lb.as_subclass(Tensor)
    return [(px(b[l>0], size), l[l>0]) for b,l in zip(bb, lb)]

# ---------------------------------------------------------------------------------------------------------------------
# torchvision's SSDlite
_MEAN,_STD = (torch.tensor(o)[:,None,None] for o in imagenet_stats)

def ssdlite(n_classes:int, size:int):
    "SSDlite320 with random weights for `n_classes` (+ background), working at `size` pixels like ours"
    m = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=n_classes+1,
                                      score_thresh=0.01, detections_per_img=100)
    t = m.transform
    m.transform = GeneralizedRCNNTransform(size, size, t.image_mean, t.image_std, size_divisible=1, fixed_size=(size, size))
    return m

def tv_batch(xb, bb, lb, size):
    "A batch of `ssd_dls` as torchvision wants it: images in [0,1], targets with boxes in pixels and no padding"
    x = xb.as_subclass(Tensor)*_STD + _MEAN
    return list(x), [dict(boxes=b, labels=l) for b,l in targets_px(bb, lb, size)]

def train_tv(dls, r:dict, budget:float, opt_name:str)->tuple:
    model = ssdlite(len(dls.vocab)-1, r.size).train()
    bs = dls.train.bs
    params = [p for p in model.parameters() if p.requires_grad]
    if opt_name == 'sgd': lr,opt = 0.15*bs/192, torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=4e-5)
    else: lr,opt = 1e-3, torch.optim.AdamW(params, lr=1e-3, weight_decay=4e-5)
    sched = LR_SCHED(lr)
    t0,iters,losses = time.perf_counter(),0,[]
    while True:
        for xb,bb,lb in dls.train:
            frac = (time.perf_counter()-t0)/budget
            for g in opt.param_groups: g['lr'] = sched(min(frac, 1.))
            x,tg = tv_batch(xb, bb, lb, r.size)
            loss = sum(model(x, tg).values())
            opt.zero_grad(); loss.backward(); opt.step()
            iters += 1; losses.append(float(loss.detach()))
            if time.perf_counter()-t0 >= budget: break
        else: continue
        break
    return model, dict(iters=iters, seconds=time.perf_counter()-t0, images=iters*bs, last_losses=float(np.mean(losses[-20:])),
                       opt=opt_name, lr=lr)

def preds_tv(model, dl, size:int):
    model.eval()
    preds,targs = [],[]
    with torch.no_grad():
        for xb,bb,lb in dl:
            x,tg = tv_batch(xb, bb, lb, size)
            preds += [(o['boxes'], o['labels'], o['scores']) for o in model(x)]
            targs += [(t['boxes'], t['labels']) for t in tg]
    return preds, targs

# ---------------------------------------------------------------------------------------------------------------------
def score(preds, targs, vocab)->dict:
    m,per = mean_ap(preds, targs, iou_thresh=0.5)
    return dict(mAP=m, per_class={str(vocab[int(k)]): v for k,v in per.items()})

def main():
    p = parser(__doc__.split('\n\n')[0])
    p.add_argument('--data', choices=['bccd', 'shapes'], default='bccd')
    p.add_argument('--budget', type=float, default=None, help='seconds of training for each model (default 900; quick 10)')
    p.add_argument('--tv-opt', default='sgd', help="SSDlite's optimizer(s): sgd, adamw or sgd,adamw (one run each)")
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--models', default='ours,ssdlite', help="which to train: ours, ssdlite or both (default)")
    args = p.parse_args()
    info = setup(args)
    budget = args.budget or (10 if args.quick else 900)
    set_seed(args.seed)
    tr,te,r = load_data(args.data, args.quick)
    print(f"{args.data}: {len(tr[0])} training images, {len(te[0])} test images, {r.size} px, batch {r.bs}; "
          f"{budget:.0f} s of training each", flush=True)
    rows = []
    def run(name, train_fn, preds_fn):
        set_seed(args.seed)
        dls = ssd_dls(tr, te, size=r.size, bs=r.bs, num_workers=0)
        model,st = train_fn(dls)
        t = time.perf_counter()
        res = score(*preds_fn(model, dls.valid.new(shuffle=False, drop_last=False)), dls.vocab)
        rows.append(dict(model=name, **res, **st, eval_seconds=time.perf_counter()-t))
        print(f"{name}: mAP@0.5 {res['mAP']:.3f} after {st['iters']} steps ({st['images']/len(tr[0]):.1f} epochs) in "
              f"{st['seconds']:.0f} s", flush=True)
        return dls.vocab
    models = args.models.split(',')
    if 'ours' in models:
        vocab = run('ssd_nbs (tiny_resnet)', lambda d: train_ours(d, r, budget), lambda m,dl: preds_ours(m, dl, r.size))
    for o in (args.tv_opt.split(',') if 'ssdlite' in models else []):
        vocab = run(f'SSDlite320 ({o})', lambda d: train_tv(d, r, budget, o), lambda m,dl: preds_tv(m, dl, r.size))
    classes = [str(o) for o in vocab[1:]]
    cols = [('model','model'), ('mAP','mAP@0.5')] + [(f'ap_{c}', c) for c in classes] + \
           [('iters','steps'), ('epochs','epochs'), ('seconds','train s'), ('last_losses','final train loss')]
    for row in rows:
        row['epochs'] = row['images']/len(tr[0])
        for c in classes: row[f'ap_{c}'] = row['per_class'].get(c)
    f = dict(mAP='.3f', epochs='.1f', seconds='.0f', last_losses='.3f', **{f'ap_{c}': '.3f' for c in classes})
    print(f"\n{args.data}, {len(tr[0])} training / {len(te[0])} test images at {r.size} px, batch {r.bs}, "
          f"{budget:.0f} s of training each ({info['torch_threads']} threads, 1 process); AP per class at IoU 0.5\n")
    print(table(rows, cols, f))
    write_json(args.json, dict(bench='accuracy', machine=info, quick=args.quick, data=args.data, budget=budget, recipe=r.to_dict(),
                               n_train=len(tr[0]), n_test=len(te[0]), rows=rows))

if __name__ == '__main__': main()

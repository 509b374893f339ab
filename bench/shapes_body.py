"""The synthetic shapes (`ssd-train`'s default data and recipe, `SHAPES`) on another body, at an equal CPU budget.

    python bench/shapes_body.py --arch efficientnet_lite0 --stride 8     # pretrained Lite0 cut at stride 8
    python bench/shapes_body.py                                          # tiny_resnet from random weights (the default)
    python bench/shapes_body.py --quick                                  # a check that it runs

The budget is in epochs, chosen from `--budget` (process CPU seconds of training, one thread: 300 = 5 minutes of a
quiet core) and the CPU time of 40 training batches measured first (forward, loss, backward, step, data loading
included). Then `ssd_nbs.train.train` runs the recipe with that many epochs, as `ssd-train` does (`fit_run`: a
pretrained body is fine-tuned with `--freeze-epochs`, `--body-lr-div`, `--head-lr-div`). Prints and writes the
mAP@0.5 on the shapes' validation split (overall and per class), wall and CPU seconds."""
import sys, time, json, argparse, tempfile
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchutil import machine_info
import torch
from fastai.vision.all import set_seed, Callback, CancelFitException
from ssd_nbs.config import SHAPES
from ssd_nbs.readers import shapes_data, data_items
from ssd_nbs.train import train, _learner

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
for o,t in [('arch',str), ('stride',int), ('epochs',int), ('lr',float), ('bs',int), ('size',int), ('grids',str), ('nh',int),
            ('freeze_epochs',int), ('body_lr_div',float), ('head_lr_div',float)]:
    p.add_argument('--'+o.replace('_', '-'), type=t, default=None, help="default: SHAPES'")
p.add_argument('--pretrained', action=argparse.BooleanOptionalAction, default=None, help="default: where the arch has weights")
p.add_argument('--budget', type=float, default=300., help='CPU seconds of training, to choose the epochs (without --epochs)')
p.add_argument('--n-shapes', type=int, default=12000)
p.add_argument('--quick', action='store_true', help='600 images, 1 epoch: a check that it runs')
p.add_argument('--threads', type=int, default=1)
p.add_argument('--out', default=None, help='JSON file for the results')
a = p.parse_args()
if a.quick: a.n_shapes,a.epochs = 200,1
torch.set_num_threads(a.threads); t0,c0 = time.time(),time.process_time()
keys = ('arch', 'pretrained', 'stride', 'size', 'grids', 'nh', 'epochs', 'lr', 'bs', 'freeze_epochs', 'body_lr_div', 'head_lr_div')
cfg = replace(SHAPES, **{k: getattr(a, k) for k in keys if getattr(a, k) is not None}).with_pretrained()

class Stop(Callback):
    "CPU seconds of batches 10 to 50 of the first epoch, then stop"
    def after_batch(self):
        if self.iter == 10: self.c = time.process_time()
        if self.iter == 50: self.learn.batch_cpu = (time.process_time()-self.c)/40; raise CancelFitException()

calib = None
if a.epochs is None:                                                       # epochs from the budget
    set_seed(42)
    tr,va = data_items(shapes_data(a.n_shapes, size=cfg.size))              # as `train` reads them
    learn = _learner(tr, va, cfg); learn.unfreeze(); learn.fit(1, 1e-4, cbs=Stop())
    n_batches = len(learn.dls.train) + len(learn.dls.valid)//3             # validation: about a third of a training batch
    calib = dict(batch_cpu=learn.batch_cpu, epoch_cpu=learn.batch_cpu*n_batches)
    cfg = replace(cfg, epochs=max(1, round(a.budget/calib['epoch_cpu'])))
    print(f"calibration: {learn.batch_cpu*1000:.0f} CPU ms a batch, about {calib['epoch_cpu']:.0f} CPU s an epoch: {cfg.epochs} epochs")
    del learn
t1,c1 = time.time(),time.process_time()
with tempfile.TemporaryDirectory() as d:
    res = train(None, cfg, n_shapes=a.n_shapes, threads=a.threads, out=d)
out = dict(settings=vars(a), config=res['settings'], calibration=calib, mAP=res['mAP'], per_class=res['per_class'],
           epochs=res['epochs'], train_seconds=round(time.time()-t1), train_cpu_seconds=round(time.process_time()-c1),
           seconds=round(time.time()-t0), cpu_seconds=round(time.process_time()-c0), history=res['history'],
           machine=machine_info())
print(json.dumps({k: out[k] for k in ('mAP', 'per_class', 'epochs', 'train_seconds', 'train_cpu_seconds', 'seconds')}))
if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(out, indent=1))

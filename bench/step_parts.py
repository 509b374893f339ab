#!/usr/bin/env python
"""A training step of the BCCD recipe by part, and the cheapest levers on it (one thread, process CPU time).

    python bench/step_parts.py [--quick] [--json bench/results/step_parts.json] [--reps 7] [--no-compile]

The model and loss are `build_ssd(BCCD, 3)` (pretrained EfficientNet-Lite0 cut at stride 8, 320 px, grids 40..1),
batch 8 of random images with 1-26 random boxes each (BCCD has 13 an image on average); Adam (torch's) steps.

Parts: the step is run piece by piece, each piece's input detached, so that each piece's forward and backward can be
timed alone: the body's children one by one, the head's stem, each grid (its stride-2 convs and its output conv),
`SSDLoss` (forward, with the matching; `match_anchors` alone is timed on the same boxes), the loss's backward, and the
optimizer step (torch's Adam; fastai's Adam, which `ssd-train` uses, on the same gradients). The whole step, not cut,
is timed in the same turns: the parts should add up to it.

Levers: images/s of a whole step (forward, loss, backward, Adam step) of models built for each, timed in turns with
the baseline (the recipe as `build_ssd` gives it): the stem and the first 1, 2 or 3 blocks of the body frozen
(requires_grad False and their BatchNorms in eval, as detectron2's FREEZE_AT; the stem + 3 blocks is everything up to
the stride-8 stage, as detectron2's default FREEZE_AT=2), channels_last (the model alone, as `ssd-train`'s
`ChannelsLast` callback does, and model and input), training at 288 and 256 px (grids 36,18,9,5,3,1 and
32,16,8,4,2,1), two of these together, `torch.compile`, and YOLOv8n (ultralytics, when installed:
`DetectionModel('yolov8n.yaml')` and its own loss, the same batch, boxes and Adam). `--malloc keep` (benchutil) times
them all with glibc keeping freed memory."""
from __future__ import annotations
import os, sys
os.environ.setdefault('YOLO_OFFLINE', '1'); os.environ.setdefault('YOLO_VERBOSE', 'False')
COMPILE = '--no-compile' not in sys.argv                               # torch.compile compiles for minutes
if not COMPILE: sys.argv.remove('--no-compile')
sys.argv += [a for o,a in (('--threads', '--threads=1'), ('--clock', '--clock=cpu')) if not any(s.startswith(o) for s in sys.argv)]
import benchutil
from benchutil import setup_reps, time_round_robin, med, table, write_json
import importlib.util, time
import torch
from dataclasses import replace
from ssd_nbs.config import BCCD, build_ssd
from ssd_nbs.model import halving_grids
from ssd_nbs.loss import match_anchors
from ssd_nbs.learner import ssd_split
from bench_train_step import batch

N_MAX = 26                                                             # boxes an image: 1..26, 13.5 on average

def grids_for(size:int)->tuple: # BCCD's grids (40,20,10,5,3,1) at 320 px: the first five of the feature map's, then 1
    g = halving_grids(size//8)
    return tuple(dict.fromkeys(g[:5] + (1,)))

def recipe(size:int): return replace(BCCD, size=size, grids=grids_for(size))

def grid(down, out, x): # one grid of `SSDHead`: (its features, box activations, class scores)
    y = down(x); return (y, *out(y))

def describe(i:int, layer, y)->str: return f'body {i}: {type(layer).__name__} -> {tuple(y.shape[1:])}'

class Parts:
    "A step of `model` cut into pieces, each forward and backward timed: name -> list of seconds"
    def __init__(self, model, loss_func, x, bb, lb):
        self.model,self.loss_func,self.x,self.bb,self.lb = model,loss_func,x,bb,lb
        self.opt = torch.optim.Adam(model.parameters(), 1e-4)
        self.times,self.names = {},{}
    def add(self, k, t): self.times.setdefault(k, []).append(t)
    def timed(self, k, f, *a):
        t = benchutil.CLOCK(); r = f(*a); self.add(k, benchutil.CLOCK()-t); return r
    def cut(self, h): # `h` detached: the next piece's input, and the gradient the previous piece's backward needs
        xin = h.detach().requires_grad_(h.requires_grad)
        if self.segs: self.segs[-1][2][0] = xin
        return xin
    def piece(self, name, f, h, extra=0): # run `f` on the cut `h`: its outputs (the next input, then `extra` others)
        xin = self.cut(h)
        outs = self.timed('fwd '+name, f, xin)
        outs = outs if isinstance(outs, tuple) else (outs,)
        leaves = [None] + [o.detach().requires_grad_() for o in outs[1:]]
        self.segs.append((name, list(outs), leaves))
        return outs
    def __call__(self):
        m = self.model.train()
        self.segs = []
        h = self.x
        for i,l in enumerate(m.body):
            h, = self.piece(str(i), l, h)
            self.names.setdefault(str(i), describe(i, l, h))
        h, = self.piece('head stem', m.head.stem, h)
        for g,down,out in zip(m.head.grids, m.head.downs, m.head.outs):
            h,_,_ = self.piece(f'head grid {g}', lambda x,down=down,out=out: grid(down, out, x), h)
        boxes = [s[2][1] for s in self.segs[-len(m.head.grids):]]; clas = [s[2][2] for s in self.segs[-len(m.head.grids):]]
        anc = self.loss_func.anchors
        self.timed('matching alone', lambda: match_anchors(self.bb, anc, self.loss_func.match_iou, valid=self.lb > 0))
        self.names['loss'] = 'SSDLoss (its forward matches the anchors)'
        loss = self.timed('fwd loss', lambda: self.loss_func((torch.cat(boxes, 1), torch.cat(clas, 1)), self.bb, self.lb))
        self.timed('bwd loss', loss.backward)
        for name,outs,leaves in reversed(self.segs):
            ps = [(o, l.grad) for o,l in zip(outs, leaves) if l is not None and l.grad is not None]
            if ps: self.timed('bwd '+name, torch.autograd.backward, [o for o,_ in ps], [g for _,g in ps])
            else: self.add('bwd '+name, 0.)
        self.timed('optimizer step (torch Adam)', lambda: (self.opt.step(), self.opt.zero_grad()))

def whole_step(model, loss_func, x, bb, lb, frozen=(), params=None):
    "A function that runs one training step of `model`: forward, loss, backward, Adam step"
    opt = torch.optim.Adam([p for p in (params or model.parameters()) if p.requires_grad], 1e-4)
    def step():
        model.train()
        for l in frozen: l.eval()                                      # frozen BatchNorms: running statistics
        loss_func(model(x), bb, lb).backward(); opt.step(); opt.zero_grad()
    return step

def freeze(model, n:int)->list: # the stem (Renorm, conv, BN) and the first `n` blocks of the body, frozen
    ls = list(model.body)[:3+n]
    for p in (p for l in ls for p in l.parameters()): p.requires_grad_(False)
    return ls

def ssd_levers(bs, size, small, gen, compile_:bool)->dict:
    "name -> (step function, size)"
    def data(s): return batch(bs, s, gen, n_max=N_MAX)
    res = {}
    def add(name, s=size, n_frozen=0, cl_model=False, cl_input=False, compiled=False):
        model,loss = build_ssd(recipe(s), 3)
        x,bb,lb = data(s)
        if cl_model: model = model.to(memory_format=torch.channels_last)
        if cl_input: x = x.contiguous(memory_format=torch.channels_last)
        frozen = freeze(model, n_frozen) if n_frozen else ()
        params = list(model.parameters())
        if compiled: model = torch.compile(model)
        res[name] = (whole_step(model, loss, x, bb, lb, frozen, params), s)
    add('baseline (the recipe, 320 px)' if size == 320 else f'baseline ({size} px)')
    add('channels_last model (as ssd-train)', cl_model=True)
    add('channels_last model and input', cl_model=True, cl_input=True)
    for n in (1, 2, 3): add(f'frozen: stem + {n} block{"s"*(n>1)}', n_frozen=n)
    add('frozen: stem + 3 blocks, channels_last model', n_frozen=3, cl_model=True)
    for s in small: add(f'{s} px', s=s)
    add(f'frozen: stem + 3 blocks, channels_last model, {small[-1]} px', s=small[-1], n_frozen=3, cl_model=True)
    if compile_:
        try:
            add('torch.compile', compiled=True)
            res['torch.compile'][0]()                                  # compiles now: errors show here
        except Exception as e:
            res.pop('torch.compile', None)
            print(f'# torch.compile failed: {type(e).__name__}: {(str(e).strip().splitlines() or [""])[0][:200]}', flush=True)
    return res

def yolo_step(bs, size, gen):
    "YOLOv8n's training step (its `DetectionModel` and loss, Adam), or None without ultralytics"
    if importlib.util.find_spec('ultralytics') is None: return None
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.cfg import get_cfg
    m = DetectionModel('yolov8n.yaml', nc=3, verbose=False); m.args = get_cfg()   # the loss's default gains
    x,bb,lb = batch(bs, size, gen, n_max=N_MAX)
    real = lb > 0
    xyxy = (bb[real] + 1)/2                                             # (n, 4) in [0, 1]
    b = dict(img=x, batch_idx=real.nonzero()[:,0].float(), cls=(lb[real]-1).float()[:,None],
             bboxes=torch.cat([(xyxy[:,:2]+xyxy[:,2:])/2, xyxy[:,2:]-xyxy[:,:2]], 1))   # YOLO's: normalised xywh
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    def step(): m.train(); m.loss(b)[0].sum().backward(); opt.step(); opt.zero_grad()
    return step

def main():
    args, info, reps, gen = setup_reps(__doc__.replace('\n\n', ' ', 1), 'steps')
    reps = args.reps or (1 if args.quick else 7)
    bs, size, small = (2, 160, (128,)) if args.quick else (BCCD.bs, BCCD.size, (288, 256))
    assert recipe(320).grids == BCCD.grids
    torch.manual_seed(0)
    # parts
    model,loss = build_ssd(recipe(size), 3)
    x,bb,lb = batch(bs, size, gen, n_max=N_MAX)
    parts = Parts(model, loss, x, bb, lb)
    whole = whole_step(model, loss, x, bb, lb)
    from fastai.optimizer import Adam as FastaiAdam
    fopt = FastaiAdam(ssd_split(model), 1e-4)                           # `ssd_learner`'s: a group for the body, one for the head
    def fastai_opt():                                                   # needs gradients: one backward first (not timed)
        loss(model.train()(x), bb, lb).backward(); t = benchutil.CLOCK(); fopt.step(); fopt.zero_grad()
        parts.add('optimizer step (fastai Adam)', benchutil.CLOCK()-t)
    for _ in range(1 if args.quick else 2): parts(); whole(); fastai_opt()
    parts.times = {}
    ts = time_round_robin(dict(parts=parts, whole=whole, fastai_opt=fastai_opt), max(reps, 5) if not args.quick else 1, warmup=0)
    pt = {k: med(v) for k,v in parts.times.items()}
    t_whole = med(ts['whole'])
    keys = [k[4:] for k in pt if k.startswith('fwd ')]
    rows = []
    for k in keys:
        f,b = pt['fwd '+k], pt.get('bwd '+k, 0.)
        rows.append(dict(part=parts.names.get(k, k), fwd_ms=f*1e3, bwd_ms=b*1e3, ms=(f+b)*1e3, share=(f+b)/t_whole))
    o = pt['optimizer step (torch Adam)']
    rows.append(dict(part='optimizer step (torch Adam)', ms=o*1e3, share=o/t_whole))
    body = sum(r['ms'] for r in rows if r['part'].startswith('body'))
    head = sum(r['ms'] for r in rows if r['part'].startswith('head'))
    total = sum(r['ms'] for r in rows)
    summary = [dict(part='body (all blocks)', fwd_ms=sum(r['fwd_ms'] for r in rows if r['part'].startswith('body')),
                    bwd_ms=sum(r['bwd_ms'] for r in rows if r['part'].startswith('body')), ms=body, share=body/1e3/t_whole),
               dict(part='head (stem and grids)', fwd_ms=sum(r['fwd_ms'] for r in rows if r['part'].startswith('head')),
                    bwd_ms=sum(r['bwd_ms'] for r in rows if r['part'].startswith('head')), ms=head, share=head/1e3/t_whole),
               dict(part='sum of the parts', ms=total, share=total/1e3/t_whole),
               dict(part='whole step, not cut (same turns)', ms=t_whole*1e3, share=1.),
               dict(part='  matching alone (inside the loss forward)', ms=pt['matching alone']*1e3, share=pt['matching alone']/t_whole),
               dict(part='  optimizer step, fastai Adam (ssd-train)', ms=pt['optimizer step (fastai Adam)']*1e3,
                    share=pt['optimizer step (fastai Adam)']/t_whole)]
    f = dict(fwd_ms='.1f', bwd_ms='.1f', ms='.1f', share=lambda v: f'{v:.1%}')
    print(f'## Parts: batch {bs}, {size} px, median of {len(ts["whole"])} steps\n')
    print(table(rows + summary, [('part','part'), ('fwd_ms','forward ms'), ('bwd_ms','backward ms'), ('ms','total ms'),
                                 ('share','share of the whole step')], f), flush=True)
    # levers
    del parts, whole, model
    fns = ssd_levers(bs, size, small, gen, not args.quick and COMPILE)
    y = yolo_step(bs, size, gen)
    if y is not None: fns['YOLOv8n (ultralytics, its loss)'] = (y, size)
    else: print('# YOLOv8n: ultralytics is not installed (pip install ultralytics, bench only): skipped')
    lt = time_round_robin({k: v[0] for k,v in fns.items()}, reps, warmup=1 if args.quick else 2)
    base = next(iter(fns))
    lrows = []
    for k,(_,s) in fns.items():
        ratio = med([b/t for b,t in zip(lt[base], lt[k])])             # speed-up over the baseline, turn by turn
        lrows.append(dict(lever=k, size=s, step_ms=med(lt[k])*1e3, img_s=bs/med(lt[k]), speedup=ratio))
    print(f'\n## Levers: whole training steps, batch {bs}, median of {reps} in turns; speed-up = median over turns of '
          f'(baseline step time / this step time)\n')
    print(table(lrows, [('lever','lever'), ('size','px'), ('step_ms','step ms'), ('img_s','images/s'), ('speedup','speed-up')],
                dict(step_ms='.0f', img_s='.2f', speedup='.2f')))
    write_json(args.json, dict(bench='step_parts', machine=info, quick=args.quick, batch=bs, size=size, reps=reps,
                               parts=rows+summary, part_times_ms={k: v*1e3 for k,v in pt.items()}, levers=lrows, lever_times=lt, whole_times=ts))

if __name__ == '__main__': main()

"""BCCD's recipe with the body's stem and first 3 blocks frozen (`frozen_bccd.py`'s `FreezeAt`), and one lever at a time.

    python bench/recipe_bccd.py --arm frozen --seeds 42                  # the frozen baseline
    python bench/recipe_bccd.py --arm e30 --seeds 42,1,2                 # a lever (ARMS below), three seeds
    python bench/recipe_bccd.py --arm giou --quick                       # a check that it runs

Each run is `bench/bccd_body.py`'s (`run`: BCCD trainval -> test, trained as `ssd-train --recipe bccd` trains it,
channels_last) with `FreezeAt` in every epoch, the arm's settings of `SSDConfig` changed, and, for the GIoU arms, the
loss wrapped (`GIoULoss`: the package is not changed). After training, the test set's error report (`save_errors`,
as `ssd-train` writes it) goes to `--errors-dir/ARM-seedS/errors.json`. Appends a row per run to `--out` (JSON):
mAP@0.5, AP per class, process CPU seconds of training, the error report's delta APs."""
import sys, json, time, fcntl
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bccd_body import options, parse, run, FreezeAt
import torch
from fastai.vision.all import Callback
from ssd_nbs.core import plain
from ssd_nbs.anchors import match_anchors, activ_to_bbox
from ssd_nbs.loss import SSDLoss, _BCEOneHot, bce_loss
from ssd_nbs.report import save_errors
from benchutil import matches

def giou(a, b): # (n, 4) boxes x1y1x2y2, (n, 4) -> (n,) generalised IoU of each pair
    "GIoU of pairs of boxes: IoU minus the share of their enclosing box that neither covers"
    wh = (torch.minimum(a[:,2:], b[:,2:]) - torch.maximum(a[:,:2], b[:,:2])).clamp(min=0)
    inter = wh[:,0]*wh[:,1]
    area = lambda o: (o[:,2]-o[:,0]).clamp(min=0)*(o[:,3]-o[:,1]).clamp(min=0)
    union = area(a) + area(b) - inter
    cwh = torch.maximum(a[:,2:], b[:,2:]) - torch.minimum(a[:,:2], b[:,:2])
    hull = cwh[:,0]*cwh[:,1]
    return inter/union.clamp(min=1e-7) - (hull-union)/hull.clamp(min=1e-7)

class GIoULoss(SSDLoss):
    "`SSDLoss` whose box part is `l1`*L1 on the activations + `w`*(1-GIoU) of the decoded boxes against their objects"
    def __init__(self, base:SSDLoss, w:float=2., l1:float=1.):
        self.__dict__.update(base.__dict__); self.w,self.l1 = w,l1
    def parts(self, preds, bboxes, labels):
        box_act,clas,bboxes,anc,(b,a,g,l),n_pos = matches(self, preds, bboxes, labels, match_anchors)
        act, gt = box_act[b,a], bboxes[b,g]
        bb = self.w*(1 - giou(activ_to_bbox(act, anc[a]), gt)).sum()
        if self.l1: bb = bb + self.l1*(act - self.coder.encode(gt, anc[a])).abs().sum()
        if self.gamma == 0: cl = _BCEOneHot.apply(clas, b, a, l)
        else:
            targ = torch.zeros_like(clas); targ[b,a,l] = 1.
            cl = bce_loss(clas[...,1:], targ[...,1:], self.gamma, self.alpha)
        return bb/n_pos, cl/n_pos

class WrapLoss(Callback):
    "Replace the learner's loss by `f(loss)` before training"
    order = 0
    def __init__(self, f): self.f,self.done = f,False
    def before_fit(self):
        if not self.done: self.learn.loss_func = self.f(self.learn.loss_func); self.done = True

class Keep(Callback):
    "Keep the learner, for its error report after training"
    def before_fit(self): self.kept = self.learn

def runs_table(runs:list)->str:
    "A markdown row per run, then the mean and spread (max - min) of each arm with more than one seed"
    cls = ['Platelets', 'RBC', 'WBC']; K = ['Loc', 'Bkg', 'Dupe', 'Cls', 'Both', 'Miss']
    f = lambda r: [f"{r['mAP']:.4f}", *(f"{r[c]:.4f}" for c in cls), *(f"{r['errors'][k]:.3f}" for k in K), str(r['train_cpu_s']),
                   f"{r['train_cpu_s']/len(r['run']['epoch_seconds']):.1f}"]
    out = ['| arm | seed | mAP@0.5 | ' + ' | '.join(cls) + ' | ' + ' | '.join(f'dAP {k}' for k in K) + ' | training CPU s | CPU s an epoch |',
           '|' + '---|'*(len(cls)+len(K)+5)]
    arms = list(dict.fromkeys(r['arm'] for r in runs))
    for arm in arms:
        rs = sorted([r for r in runs if r['arm'] == arm], key=lambda r: r['seed'])
        out += [f"| {arm} | {r['seed']} | " + ' | '.join(f(r)) + ' |' for r in rs]
        if len(rs) > 1:
            m = lambda k: sum(r[k] for r in rs)/len(rs)
            out.append(f"| **{arm}, mean of {len(rs)}** | | **{m('mAP'):.4f}** (spread {max(r['mAP'] for r in rs)-min(r['mAP'] for r in rs):.4f}) | "
                       + ' | '.join(f'{m(c):.4f}' for c in cls) + ' | ' + ' | '.join(f"{sum(r['errors'][k] for r in rs)/len(rs):.3f}" for k in K)
                       + f" | {m('train_cpu_s'):.0f} | |")
    return '\n'.join(out)

S384 = dict(size=384, grids='48,24,12,6,3,1', zooms='1.2,1.56,4.0368')  # the 320 px anchors' sizes in pixels, 48x48 at stride 8
ARMS = dict(frozen=({}, None), e30=(dict(epochs=30), None), e40=(dict(epochs=40), None), s384=(S384, None),
            s384e30=(dict(S384, epochs=30), None), giou=({}, lambda l: GIoULoss(l, 2., 1.)),
            giou_only=({}, lambda l: GIoULoss(l, 2., 0.)), focal=(dict(gamma=2.), None),
            e30giou=(dict(epochs=30), lambda l: GIoULoss(l, 2., 1.)), s384giou=(S384, lambda l: GIoULoss(l, 2., 1.)))

def main():
    p = options(__doc__)
    p.add_argument('--seeds', default='42', help='comma-separated seeds')
    p.add_argument('--arm', default='frozen', help=f'one of: {", ".join(ARMS)}')
    p.add_argument('--errors-dir', default='bench/results/recipe_bccd_runs')
    p.add_argument('--table', action='store_true', help="print the table of `--out`'s runs (mean of the seeds too) and stop")
    a = parse(p)
    if a.table: print(runs_table(json.loads(Path(a.out).read_text())['runs'])); sys.exit()
    sets, wrap = ARMS[a.arm]
    for k,v in sets.items():
        if a.quick and k in ('size', 'grids', 'zooms'): continue
        setattr(a, k, v)
    out = Path(a.out) if a.out else None
    for seed in map(int, a.seeds.split(',')):
        a.seed = seed
        keep = Keep()
        r = run(a, [FreezeAt(), keep] + ([WrapLoss(wrap)] if wrap else []))
        c0 = time.process_time()
        d = Path(a.errors_dir)/f'{a.arm}-seed{seed}'; d.mkdir(parents=True, exist_ok=True)
        rep = save_errors(keep.kept, d)
        P,T,sizes,files = keep.kept.error_preds(keep.kept.dls[1])         # every detection, for `bccd_background.py`
        (d/'preds.json').write_text(json.dumps(dict(files=[str(o) for o in files], sizes=sizes,
            preds=[dict(boxes=b.tolist(), labels=list(map(str, l)), scores=s.tolist()) for b,l,s in P],
            targets=[dict(boxes=b.tolist(), labels=list(map(str, l))) for b,l in T])))
        row = dict(arm=a.arm, seed=seed, mAP=r['mAP'], **r['per_class'], train_cpu_s=r['train_cpu_seconds'],
                   errors={k: v['dAP'] for k,v in rep['errors'].items()}, counts={k: v['count'] for k,v in rep['errors'].items()},
                   fp_dAP=rep['special']['FalsePos'], report_cpu_s=round(time.process_time()-c0))
        print(json.dumps(row), flush=True)
        if out:                                                    # two runs may finish at once: one writes at a time
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out.with_suffix('.lock'), 'w') as lk:
                fcntl.flock(lk, fcntl.LOCK_EX)
                runs = json.loads(out.read_text())['runs'] if out.exists() else []
                runs = [o for o in runs if (o['arm'], o['seed']) != (a.arm, seed)] + [dict(row, run=r)]
                out.write_text(json.dumps(dict(bench='recipe_bccd', runs=runs), indent=1) + '\n')

if __name__ == '__main__': main()

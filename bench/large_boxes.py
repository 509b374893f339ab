"""Are the boxes of large objects too small? A stand-in for natural photos with one large object each, measured candidate by candidate.

    python bench/large_boxes.py                 # the run of bench/RESULTS.md: 4 trainings of ~2 CPU minutes, one thread
    python bench/large_boxes.py --quick         # 40 images, 2 epochs: a check that it runs

The stand-in: 400 images of 160 px (80% to train, the last 20% to validate), each a noise, gradient or stripes
background (`01_data`'s) with one object (85%) or two or three; the first object's side is 45% to 100% of the
image's, the others' 12% to 40%, aspect ratios up to 1.5. The class is the object's *texture* (stripes, dots or
checks), as an animal's is its fur, so that a part of an object looks like the class as the head of a dog does;
the outline (ellipse or rectangle) says nothing.

Measured without training, on every box of the set (the anchors of `DATA`'s grids at 160 px: 20,10,5,3,2,1):
the best IoU of each object with an anchor, the share that reach no anchor at the matching IoU (0.4), the anchors
matched per object and their grids, and the largest log-size activation a matched anchor needs (the clamp of
`activ_to_bbox` is `log(62.5)/0.2 = 20.7`).
Measured after training `DATA` (EfficientNet-Lite0 cut at stride 8, 160 px, 10 epochs) with four zoom sets (the
course's, the fitted 1, 1.3, 2, and the fitted ones on the grids of 3 cells or fewer only, or on the finer ones
only): mAP@0.5, TIDE's delta APs, the grids of the class and localisation errors, and for each validation object the detection that scores highest for
its class among those overlapping it (IoU > 0.1): its IoU, its size over the object's (sqrt of the areas' ratio),
the grid of its anchor; the same with the decode's clamp to the image left out; and how often NMS's choice (the top
score) has IoU < 0.5 while another candidate over the score threshold has IoU >= 0.5."""
import sys, time, math, json, argparse, resource
from dataclasses import replace
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine_info
from fastai.vision.all import set_seed
from ssd_nbs.core import box_iou, xyxy2cthw
from ssd_nbs.data import _background, _shape_mask, _colour, _tight_box
from ssd_nbs.anchors import make_anchors, match_anchors, bbox_to_activ, activ_to_bbox
from ssd_nbs.config import DATA
from ssd_nbs.metrics import mean_ap
from ssd_nbs.inference import detections, PostProcess
from ssd_nbs.errors import tide_errors, delta_aps, KINDS
from ssd_nbs.train import _learner, fit_run

TEXTURES = ('stripes', 'dots', 'checks')
BINS = ((0, .4), (.4, .6), (.6, .8), (.8, 1.01))   # object side (sqrt of its area's share of the image)

def _texture(rng, kind, size): # (size, size) pattern in {0,1}, period 5 to 12 px, any orientation
    yy,xx = np.mgrid[0:size, 0:size].astype(float)
    a,f = rng.uniform(0, np.pi), rng.uniform(0.08, 0.2)*2*np.pi
    u,v = xx*np.cos(a) + yy*np.sin(a), -xx*np.sin(a) + yy*np.cos(a)
    if kind == 'stripes': return (np.sin(f*u) > 0).astype(float)
    if kind == 'checks':  return ((np.sin(f*u) > 0) ^ (np.sin(f*v) > 0)).astype(float)
    return (np.sin(f*u)*np.sin(f*v) > 0.5).astype(float)

def _image(rng, size):
    img,boxes,lbls = _background(rng, size), [], []
    for i in range(1 if rng.random() < 0.85 else int(rng.integers(2, 4))):
        s = rng.uniform(0.45, 1.0) if i == 0 else rng.uniform(0.12, 0.4)
        w = s*size; h = min(w*math.exp(rng.uniform(-0.4, 0.4)), size)
        if rng.random() < 0.5: w,h = h,w
        w,h = max(4, int(round(w))), max(4, int(round(h)))
        x1,y1 = int(rng.integers(0, size-w+1)), int(rng.integers(0, size-h+1))
        kind = TEXTURES[rng.integers(3)]
        m = _shape_mask('circle' if rng.random() < 0.5 else 'square', (x1,y1,x1+w,y1+h), size)
        t = _texture(rng, kind, size)[m][:,None]
        img[m] = _colour(rng, (0.5,1), (0.7,1))*t + _colour(rng, (0.3,1), (0.2,0.5))*(1-t)
        boxes.append(_tight_box(m)); lbls.append(kind)
    return np.clip(img + rng.normal(0, rng.uniform(2,12), img.shape), 0, 255).astype(np.uint8), boxes, lbls

def large_items(path, n:int, size:int=160, seed:int=0)->tuple: # (files, targets) in pixels; images written to `path`
    path = Path(path); path.mkdir(parents=True, exist_ok=True)
    rng,fs,ts = np.random.default_rng(seed), [], []
    for i in range(n):
        img,b,l = _image(rng, size)
        f = path/f'{seed}_{size}_{i:04d}.jpg'
        if not f.exists(): Image.fromarray(img).save(f, quality=90)
        fs.append(f); ts.append((b, l))
    return fs, ts

def _side(b): return ((b[...,2]-b[...,0])*(b[...,3]-b[...,1])).clamp(min=0).sqrt()/2   # in [-1,1]: share of the side

def _grid_of(grids, k): return torch.cat([torch.full((g*g*k,), g) for g in grids])

def parse_spec(spec:str)->tuple: # 'Z' or 'Z@G:Z2' (Z2 on the grids of G cells or fewer) -> (Z, G, Z2)
    z,_,rest = spec.partition('@')
    g,_,z2 = rest.partition(':')
    f = lambda o: tuple(float(v) for v in o.split(','))
    return f(z), int(g) if g else 0, f(z2) if z2 else None

def spec_anchors(spec:str, grids, ratios)->torch.Tensor: # the anchors of `make_anchors`, with the zooms of `spec` per grid
    z,g0,z2 = parse_spec(spec)
    return make_anchors(grids, tuple(z2 if z2 and g <= g0 else z for g in grids), ratios)

def static(gt:torch.Tensor, grids, spec, ratios, match_iou)->list: # one row per size bin
    anc = spec_anchors(spec, grids, ratios); gi = _grid_of(grids, len(parse_spec(spec)[0])*len(ratios))
    iou,side,rows = box_iou(gt, anc), _side(gt), []
    m = match_anchors(gt[:,None], anc, match_iou)                          # (n, n_anc): each box alone in its image
    for lo,hi in BINS:
        s = (side >= lo) & (side < hi)
        if not s.any(): continue
        b,a = (m[s] >= 0).nonzero(as_tuple=True)
        act = bbox_to_activ(gt[s][b], anc[a])[:,2:].abs()
        per = {g: float(((m[s] >= 0) & (gi == g)).sum(1).float().mean()) for g in grids}
        rows.append(dict(bin=f'{lo:.1f}-{min(hi,1):.1f}', n=int(s.sum()), best_iou=float(iou[s].max(1).values.mean()),
                         unreached=float((iou[s].max(1).values < match_iou).float().mean()), matched=len(b)/int(s.sum()),
                         on_1x1=per[1]/max(sum(per.values()), 1e-9), max_act=float(act.max()) if len(act) else 0.))
    return rows

def trained(learn, score_thresh:float=0.3)->dict:
    "mAP, and per validation object the top-scoring overlapping detection: IoU, size ratio, grid; with and without the clamp"
    lf,cfg = learn.loss_func, learn.model.cfg
    gi = _grid_of(cfg.grids, cfg.k)
    dl = learn.dls.valid.new(shuffle=False, drop_last=False)
    learn.model.eval(); rows,preds,tgts,decoded = [],[],[],[]
    with torch.no_grad():
        for xb,bb,lb in dl:
            bb,lb = bb.as_subclass(torch.Tensor), lb.as_subclass(torch.Tensor)
            out = learn.model(xb)
            preds += detections(out, lf.anchors, PostProcess.from_config(cfg, score_thresh=0.01))
            tgts += [(b[l > 0], l[l > 0]) for b,l in zip(bb, lb)]
            boxes,scores = lf.activation(out)                               # clamped to the image
            decoded.append(boxes)
            raw = activ_to_bbox(plain_act(out), lf.anchors)                 # not clamped
            for i in range(len(xb)):
                g,l = bb[i][lb[i] > 0], lb[i][lb[i] > 0]
                iou,iou_raw = box_iou(g, boxes[i]), box_iou(g, raw[i])
                for j in range(len(g)):
                    sj = torch.where(iou[j] > 0.1, scores[i][:, l[j]-1], torch.tensor(-1.))
                    a = int(sj.argmax())
                    good = (scores[i][:, l[j]-1] > score_thresh) & (iou[j] >= 0.5)
                    rows.append(dict(side=float(_side(g[j])), iou=float(iou[j,a]), iou_raw=float(iou_raw[j,a]),
                                     ratio=float(_side(boxes[i,a])/_side(g[j])), grid=int(gi[a]),
                                     nms_worse=bool(iou[j,a] < 0.5 and sj[a] > score_thresh and good.any())))
    errs = tide_errors(preds, tgts)
    d,g = errs['det'],errs['gt']
    loc = (d['kind'] == KINDS.index('Loc')) & (d['gt'] >= 0)                  # localisation errors and their objects
    r = _side(d['box'][loc]) / _side(g['box'][d['gt'][loc]])
    big = _side(g['box'][d['gt'][loc]]) >= 0.4
    decoded = torch.cat(decoded)                                            # (n_img, n_anc, 4): find each error's anchor
    def by_grid(kind): # the grids of the anchors of the errors of `kind`, and their median score
        k = d['kind'] == KINDS.index(kind)
        a = [int((decoded[i] - b).abs().sum(-1).argmin()) for i,b in zip(d['img'][k], d['box'][k])]
        return dict(n=int(k.sum()), grids={g: int((gi[a] == g).sum()) for g in cfg.grids} if a else {},
                    median_score=round(float(d['score'][k].median()), 3) if a else None)
    return dict(mAP=mean_ap(preds, tgts)[0], rows=rows, dAP={k: round(v, 3) for k,v in delta_aps(errs)['dAP'].items()},
                errors_by_grid={K: by_grid(K) for K in ('Cls', 'Loc')},
                loc=dict(n=int(loc.sum()), too_small=int((r < 1).sum()), large_objects=int(big.sum()),
                         large_too_small=int((r[big] < 1).sum())))

def squish_check(path, size:int)->float: # largest error, in [-1,1], of the boxes of non-square images through `ssd_dls`
    from ssd_nbs.data import ssd_dls
    rng,fs,ts = np.random.default_rng(1), [], []
    for i,(w,h) in enumerate([(320,180), (180,320), (500,375), (375,500)]):
        x1,y1 = int(rng.integers(0, w//4)), int(rng.integers(0, h//4)); b = [x1, y1, x1 + int(0.7*w), y1 + int(0.7*h)]
        f = Path(path)/f'squish_{w}x{h}.jpg'; Image.fromarray(rng.integers(0, 255, (h,w,3), dtype=np.uint8)).save(f)
        fs.append(f); ts.append(([b], ['a']))
    dls = ssd_dls((fs, ts), (fs, ts), size=size, bs=4, aug=False)
    _,bb,_ = dls.valid.one_batch()
    want = torch.tensor([[b[0]/w, b[1]/h, b[2]/w, b[3]/h] for (bs,_),(w,h) in zip(ts, [(320,180),(180,320),(500,375),(375,500)]) for b in bs])*2-1
    return float((bb.as_subclass(torch.Tensor)[:,0] - want).abs().max())

def plain_act(out): return out[0].as_subclass(torch.Tensor)

def by_bin(rows)->list:
    res = []
    for lo,hi in BINS:
        r = [o for o in rows if lo <= o['side'] < hi]
        if not r: continue
        v = lambda k: np.array([o[k] for o in r])
        res.append(dict(bin=f'{lo:.1f}-{min(hi,1):.1f}', n=len(r), iou=float(v('iou').mean()), iou_raw=float(v('iou_raw').mean()),
                        ratio=float(np.median(v('ratio'))), too_small=float((v('ratio') < 0.85).mean()),
                        loc=float(((v('iou') > 0.1) & (v('iou') < 0.5)).mean()), on_1x1=float((v('grid') == 1).mean()),
                        nms_worse=float(v('nms_worse').mean())))
    return res

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--quick', action='store_true', help='40 images, 2 epochs: a check that it runs')
p.add_argument('--n', type=int, default=400); p.add_argument('--epochs', type=int, default=10)
p.add_argument('--size', type=int, default=160)
p.add_argument('--zooms', nargs='+', default=['0.7,1,1.3', '1,1.3,2', '0.7,1,1.3@3:1,1.3,2', '1,1.3,2@3:0.7,1,1.3'],
               help="zoom sets to train, each a run: 'Z', or 'Z@G:Z2' for the zooms Z2 on the grids of G cells or fewer")
p.add_argument('--data', default='/tmp/ssd_large_boxes', help='folder for the images')
p.add_argument('--out', default=None, help='JSON file for the results')
a = p.parse_args()
if a.quick: a.n,a.epochs = 40,2
torch.set_num_threads(1)
fs,ts = large_items(a.data, a.n, a.size)
nt = int(a.n*0.8); tr,va = (fs[:nt], ts[:nt]), (fs[nt:], ts[nt:])
gt = torch.tensor([b for bs,_ in ts for b in bs], dtype=torch.float)/(a.size/2) - 1
print(f'{a.n} images, {len(gt)} objects; side (sqrt area) percentiles 0/5/50/95/100: '
      + ' '.join(f'{v:.2f}' for v in np.percentile(_side(gt).numpy(), [0,5,50,95,100])))
res = dict(n=a.n, size=a.size, epochs=a.epochs, static={}, runs={}, machine=machine_info(), squish_error=squish_check(a.data, a.size))
print(f"the squish: boxes of 70% of non-square images (16:9, 9:16, 4:3, 3:4) through `ssd_dls`: largest error {res['squish_error']:.4f} (in [-1,1])")
for z in a.zooms:
    cfg = replace(DATA, size=a.size, zooms=parse_spec(z)[0], epochs=a.epochs).with_pretrained()
    set_seed(42)
    c0 = time.process_time()
    learn = _learner(tr, va, cfg)
    grids = learn.model.cfg.grids
    learn.loss_func.anchors = spec_anchors(z, grids, cfg.ratios)            # the same number of anchors a cell
    res['static'][z] = static(gt, grids, z, cfg.ratios, cfg.match_iou)
    with learn.no_bar(), learn.no_logging():
        fit_run(learn, cfg)
    cpu = time.process_time() - c0
    t = trained(learn, cfg.score_thresh)
    res['runs'][z] = dict(grids=list(grids), mAP=t['mAP'], cpu_seconds=round(cpu, 1), bins=by_bin(t['rows']), dAP=t['dAP'], loc=t['loc'],
                          errors_by_grid=t['errors_by_grid'])
    print(f'zooms {z}: grids {grids}, mAP@0.5 {t["mAP"]:.3f}, {cpu:.0f} CPU s; delta AP (TIDE) {t["dAP"]}; '
          f'localisation errors {t["loc"]}; errors by grid {t["errors_by_grid"]}', flush=True)

print('\n| zooms | object side | objects | best anchor IoU | reach no anchor (IoU 0.4) | anchors matched | of them on 1x1 | largest log-size activation |')
print('|---|---|---|---|---|---|---|---|')
for z,rows in res['static'].items():
    for r in rows: print(f"| {z} | {r['bin']} | {r['n']} | {r['best_iou']:.2f} | {r['unreached']:.3f} | {r['matched']:.1f} | {r['on_1x1']:.2f} | {r['max_act']:.1f} |")
print('\n| zooms | mAP@0.5 | CPU s | object side | objects | IoU of its top detection | same, decode not clamped | size / true size (median) | < 0.85 of the true size | IoU 0.1 to 0.5 | from the 1x1 grid | NMS kept a worse box |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|')
for z,r in res['runs'].items():
    for b in r['bins']:
        print(f"| {z} | {r['mAP']:.3f} | {r['cpu_seconds']:.0f} | {b['bin']} | {b['n']} | {b['iou']:.3f} | {b['iou_raw']:.3f} | {b['ratio']:.3f} | "
              f"{b['too_small']:.2f} | {b['loc']:.2f} | {b['on_1x1']:.2f} | {b['nms_worse']:.2f} |")
res['max_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)
if a.out: Path(a.out).write_text(json.dumps(res, indent=1))

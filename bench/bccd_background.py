"""What BCCD's background errors are: the detections of a class that overlap no true box, where they lie, what they score.

    python bench/bccd_background.py bench/results/recipe_bccd_runs/frozen-seed42/preds.json --png /tmp/bkg.png

Reads the `preds.json` that `bench/recipe_bccd.py` writes (every detection on the test images, and the true boxes, in
pixels). A detection is a background error (TIDE's Bkg) when its IoU with every true box, of any class, is below 0.1.
Prints, per class and for scores from 0.3 and 0.5: the detections, the background errors among them, the share of
those touching the image's border (within 8 pixels) against the true boxes' share, and the true positives that rank
below the first background error. `--png`: the highest-scoring background errors, cropped with the true boxes drawn
(green) and the error (red), to look at."""
import sys, json, argparse
from pathlib import Path
import numpy as np

def iou(a, b): # (n,4), (m,4) -> (n,m)
    lt = np.maximum(a[:,None,:2], b[None,:,:2]); rb = np.minimum(a[:,None,2:], b[None,:,2:])
    wh = (rb-lt).clip(min=0); inter = wh[...,0]*wh[...,1]
    ar = lambda o: (o[:,2]-o[:,0])*(o[:,3]-o[:,1])
    return inter / (ar(a)[:,None] + ar(b)[None] - inter)

def border(bx, w, h, m=8): return (bx[:,0] < m) | (bx[:,1] < m) | (bx[:,2] > w-m) | (bx[:,3] > h-m)

def analyse(d:dict, thresholds=(0.3, 0.5))->tuple:
    "Per class and score threshold: detections, background errors, their share on the border, true boxes' share"
    rows, bkg = [], []
    classes = sorted({l for t in d['targets'] for l in t['labels']})
    for c in classes:
        dets = []  # (score, is_bkg, is_tp, on_border, image, box)
        n_gt = n_gt_border = 0
        for i,(p,t,(w,h)) in enumerate(zip(d['preds'], d['targets'], d['sizes'])):
            gb = np.array(t['boxes'], dtype=float).reshape(-1,4); gl = np.array(t['labels'])
            pb = np.array(p['boxes'], dtype=float).reshape(-1,4); pl = np.array(p['labels']); ps = np.array(p['scores'])
            k = pl == c; pb,ps = pb[k],ps[k]
            gc = gb[gl == c]; n_gt += len(gc); n_gt_border += int(border(gc, w, h).sum())
            io_all = iou(pb, gb) if len(gb) else np.zeros((len(pb),0))
            io_c = iou(pb, gc) if len(gc) else np.zeros((len(pb),0))
            is_bkg = io_all.max(1) < 0.1 if len(gb) else np.ones(len(pb), bool)
            is_tp = io_c.max(1) >= 0.5 if len(gc) else np.zeros(len(pb), bool)   # a loose TP (duplicates included)
            on_b = border(pb, w, h)
            dets += [(float(s), bool(b), bool(tp), bool(o), i, bx.tolist()) for s,b,tp,o,bx in zip(ps, is_bkg, is_tp, on_b, pb)]
        dets.sort(key=lambda o: -o[0])
        first_bkg = next((j for j,o in enumerate(dets) if o[1]), len(dets))
        tp_scores = np.array([o[0] for o in dets if o[2]])
        for th in thresholds:
            s = [o for o in dets if o[0] >= th]; b = [o for o in s if o[1]]
            rows.append(dict(cls=c, score_from=th, detections=len(s), bkg=len(b), bkg_share=len(b)/max(len(s),1),
                             bkg_on_border=sum(o[3] for o in b)/max(len(b),1), gt=n_gt, gt_on_border=n_gt_border/max(n_gt,1),
                             tp_below_first_bkg=int((tp_scores < dets[first_bkg][0]).sum()) if first_bkg < len(dets) else 0,
                             first_bkg_rank=first_bkg))
        bkg += [(c, *o) for o in dets if o[1]]
    return rows, sorted(bkg, key=lambda o: -o[1])

def montage(d:dict, bkg:list, fname, n:int=24, pad:int=40):
    "The `n` highest-scoring background errors, each cropped with `pad` pixels around it, true boxes green, it red"
    from PIL import Image, ImageDraw
    tiles = []
    for c,s,_,_,_,i,bx in bkg[:n]:
        im = Image.open(d['files'][i]).convert('RGB'); dr = ImageDraw.Draw(im)
        for gb in d['targets'][i]['boxes']: dr.rectangle(gb, outline=(0,200,0), width=2)
        dr.rectangle(bx, outline=(255,0,0), width=3)
        x1,y1,x2,y2 = bx; w,h = im.size
        crop = im.crop((max(0,x1-pad), max(0,y1-pad), min(w,x2+pad), min(h,y2+pad))).resize((160,160))
        ImageDraw.Draw(crop).text((3,3), f'{c} {s:.2f}', fill=(255,255,0))
        tiles.append(crop)
    cols = 6; rows = (len(tiles)+cols-1)//cols
    out = Image.new('RGB', (cols*160, rows*160))
    for j,t in enumerate(tiles): out.paste(t, ((j%cols)*160, (j//cols)*160))
    out.save(fname)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('preds'); p.add_argument('--png', default=None); p.add_argument('--n', type=int, default=24)
    a = p.parse_args()
    d = json.loads(Path(a.preds).read_text())
    rows, bkg = analyse(d)
    keys = list(rows[0])
    print('| ' + ' | '.join(keys) + ' |\n|' + '---|'*len(keys))
    for r in rows: print('| ' + ' | '.join(f'{v:.2f}' if isinstance(v, float) else str(v) for v in r.values()) + ' |')
    if a.png: montage(d, bkg, a.png, a.n)

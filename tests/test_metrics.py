"Oracle tests of `ssd_nbs.metrics.mean_ap` against pycocotools' COCOeval, on random detections and targets."
import io, contextlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ssd_nbs.metrics import mean_ap, pr_curves, to_coco, match_dets

W, H = 320, 240

def rand_data(seed, n_img=30, n_cls=4, n_max=6, integer=False, tie_decimals=1):
    "Random objects and a noisy detector: duplicates, loose boxes, background boxes, wrong classes, ties, empty images"
    rng = np.random.default_rng(seed)
    def rand_box(n):
        xy = rng.uniform(0, [W - 10, H - 10], (n, 2))
        b = np.c_[xy, np.minimum(xy + rng.uniform(10, [W / 2, H / 2], (n, 2)), [W, H])]
        return b.round() if integer else b
    preds, targs = [], []
    for _ in range(n_img):
        gb = rand_box(rng.integers(0, n_max)); gl = rng.integers(1, n_cls + 1, len(gb))
        src = np.r_[np.flatnonzero(rng.random(len(gb)) < .8), np.flatnonzero(rng.random(len(gb)) < .3)]
        jit = gb[src] + rng.normal(0, 6, (len(src), 4))
        if integer: jit = jit.round()
        jit = np.c_[np.minimum(jit[:, :2], jit[:, 2:]), np.maximum(jit[:, :2], jit[:, 2:]) + (1 if integer else 0)]
        db = np.r_[jit, rand_box(rng.integers(0, 4))]
        dl = np.r_[gl[src], rng.integers(1, n_cls + 2, len(db) - len(src))]     # class n_cls+1: never an object
        dl = np.where(rng.random(len(db)) < .1, rng.integers(1, n_cls + 1, len(db)), dl)
        ds = rng.random(len(db)).round(tie_decimals)
        if rng.random() < .15: db, dl, ds = db[:0], dl[:0], ds[:0]
        preds.append((db, dl, ds)); targs.append((gb, gl))
    return preds, targs

def rand_crowds(preds, seed, n_cls=4):
    "Crowd regions (boxes, labels) per image: one round some detections of one class, or a random one, or none"
    rng, crowds = np.random.default_rng(seed), []
    for db, dl, _ in preds:
        cb, cl = [], []
        if len(db) and rng.random() < .5:
            k = rng.integers(len(db)); sel = (np.asarray(dl) == dl[k]) & (rng.random(len(db)) < .5); sel[k] = True
            cb.append(np.r_[db[sel, :2].min(0) - rng.uniform(0, 15, 2), db[sel, 2:].max(0) + rng.uniform(0, 15, 2)]); cl.append(int(dl[k]))
        if rng.random() < .3:
            xy = rng.uniform(0, 200, 2); cb.append(np.r_[xy, xy + rng.uniform(20, 120, 2)]); cl.append(int(rng.integers(1, n_cls + 1)))
        crowds.append((np.array(cb).reshape(-1, 4), np.array(cl, dtype=int)))
    return crowds

def coco_eval(preds, targs, crowds=None):
    "pycocotools on the same data, written out independently of `to_coco`; None if there is no detection"
    anns, res = [], []
    for i, (cb, cl) in enumerate(crowds or []):
        for b, l in zip(np.asarray(cb, float).reshape(-1, 4), cl):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(l), bbox=[b[0], b[1], w, h], area=w * h, iscrowd=1))
    for i, ((gb, gl), (db, dl, ds)) in enumerate(zip(targs, preds)):
        for b, l in zip(np.asarray(gb, float).reshape(-1, 4), gl):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=int(l), bbox=[b[0], b[1], w, h], area=w * h, iscrowd=0))
        for b, l, s in zip(np.asarray(db, float).reshape(-1, 4), dl, ds):
            res.append(dict(image_id=i + 1, category_id=int(l), bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]], score=float(s)))
    if not res: return None
    cats = sorted({int(l) for _, l, _ in preds for l in l} | {int(l) for _, l in targs for l in l} |
                  {int(l) for _, l in crowds or [] for l in l})
    gt = dict(images=[dict(id=i + 1) for i in range(len(targs))], annotations=anns, categories=[dict(id=c) for c in cats])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(); coco.dataset = gt; coco.createIndex()
        E = COCOeval(coco, coco.loadRes(res), 'bbox'); E.evaluate(); E.accumulate(); E.summarize()
    return E, cats

def check_against_coco(preds, targs, eps=1e-9, crowds=None):
    out = coco_eval(preds, targs, crowds)
    if out is None: return
    E, cats = out
    m50, aps50 = mean_ap(preds, targs, iou_thresh=.5, method='coco', crowds=crowds)
    m, aps = mean_ap(preds, targs, iou_thresh=None, method='coco', crowds=crowds)
    if E.stats[1] == -1: assert np.isnan(m50) and np.isnan(m); return
    assert abs(m50 - E.stats[1]) < eps and abs(m - E.stats[0]) < eps
    prec = E.eval['precision'][:, :, :, 0, 2]                                   # (T, R, K): area 'all', maxDets 100
    for k, c in enumerate(cats):
        if (prec[:, :, k] == -1).all(): assert c not in aps; continue
        assert abs(aps50[c] - prec[0, :, k].mean()) < eps
        assert abs(aps[c] - prec[:, :, k].mean()) < eps

@pytest.mark.parametrize('seed', range(5))
def test_mean_ap_matches_pycocotools(seed):
    check_against_coco(*rand_data(seed))

@pytest.mark.parametrize('seed', range(3))
def test_mean_ap_matches_pycocotools_integer_boxes(seed):
    "Integer pixels: IoUs exactly at a threshold, and ties between objects, happen"
    check_against_coco(*rand_data(100 + seed, integer=True, n_max=10))

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 4), st.booleans(), st.integers(0, 2))
def test_mean_ap_matches_pycocotools_hypothesis(seed, n_img, n_cls, integer, dec):
    check_against_coco(*rand_data(seed, n_img=n_img, n_cls=n_cls, integer=integer, tie_decimals=dec))

@pytest.mark.parametrize('seed', range(4))
def test_mean_ap_with_crowds_matches_pycocotools(seed):
    "iscrowd regions: a detection in one (IoU = intersection over the detection's area) is neither TP nor FP"
    preds, targs = rand_data(200 + seed, integer=seed % 2 == 1)
    crowds = rand_crowds(preds, seed)
    check_against_coco(preds, targs, crowds=crowds)
    assert mean_ap(preds, targs, crowds=crowds)[0] != mean_ap(preds, targs)[0]      # the crowds changed verdicts

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 4), st.booleans(), st.integers(0, 2))
def test_mean_ap_with_crowds_matches_pycocotools_hypothesis(seed, n_img, n_cls, integer, dec):
    preds, targs = rand_data(seed, n_img=n_img, n_cls=n_cls, integer=integer, tie_decimals=dec)
    check_against_coco(preds, targs, crowds=rand_crowds(preds, seed, n_cls))

def test_crowd_rules_by_hand():
    "A crowd ignores only detections of its class and image that find no free object; it can take many; it is no object"
    gt = [(np.array([[0, 0, 10, 10]]), [1])]
    crowd = [(np.array([[50, 50, 100, 100]]), [1])]
    inside = np.array([[60, 60, 70, 70], [80, 80, 90, 90], [55, 55, 99, 99]])       # IoU with the crowd < 0.5, IoA 1
    p = [(np.r_[inside, [[0, 0, 10, 10]]], [1] * 4, [.9, .8, .7, .1])]              # three in the crowd, then the object
    assert mean_ap(p, gt)[0] == .25                                                  # without: 3 FPs before the TP
    assert mean_ap(p, gt, crowds=crowd)[0] == 1.                                     # with: all three ignored
    assert mean_ap(p, gt, crowds=[(crowd[0][0], [2])])[0] == .25                     # a crowd of another class
    assert np.isnan(mean_ap([(inside, [1] * 3, [.9, .8, .7])], [(np.zeros((0, 4)), [])], crowds=crowd)[0])  # no object
    on_obj = [(np.array([[0, 0, 10, 10], [1, 1, 10, 10]]), [1, 1], [.9, .8])]        # an object inside a crowd: TP, then
    big = [(np.array([[0, 0, 100, 100]]), [1])]                                      # its duplicate is ignored
    assert mean_ap(on_obj + [(np.zeros((0, 4)), [], [])], gt + [(np.array([[0, 0, 5, 5]]), [1])], crowds=big + [(np.zeros((0, 4)), [])])[0] == .5
    check_against_coco(on_obj, gt, crowds=big); check_against_coco(p, gt, crowds=crowd)

def test_to_coco_gives_the_same_evaluation():
    preds, targs = rand_data(7)
    gt, res = to_coco(preds, targs)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(); coco.dataset = gt; coco.createIndex()
        E = COCOeval(coco, coco.loadRes(res), 'bbox'); E.evaluate(); E.accumulate(); E.summarize()
    np.testing.assert_allclose(E.stats, coco_eval(preds, targs)[0].stats)
    crowds = rand_crowds(preds, 7)
    gt, res = to_coco(preds, targs, crowds=crowds)
    assert sum(a['iscrowd'] for a in gt['annotations']) == sum(len(c[0]) for c in crowds)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(); coco.dataset = gt; coco.createIndex()
        E = COCOeval(coco, coco.loadRes(res), 'bbox'); E.evaluate(); E.accumulate(); E.summarize()
    np.testing.assert_allclose(E.stats, coco_eval(preds, targs, crowds)[0].stats)

def test_max_det_per_image_and_class_as_pycocotools():
    gb = np.array([[10., 10, 60, 60], [100, 100, 150, 150]])
    miss = np.random.default_rng(0).uniform(200, 300, (148, 2)).repeat(2, 1) + [0, 0, 10, 10]
    preds = [(np.r_[miss, gb], [1] * 150, np.r_[np.linspace(.9, .2, 148), .1, .1])]; targs = [(gb, [1, 1])]
    assert mean_ap(preds, targs, method='coco')[0] == 0 == coco_eval(preds, targs)[0].stats[1]
    assert abs(mean_ap(preds, targs, method='coco', max_det=None)[0] - 2 / 150) < 1e-12

def test_hand_worked_cases():
    gts = [(np.array([[20, 20, 90, 100], [120, 40, 180, 120]]), ['cat', 'cat']),
           (np.array([[30, 30, 100, 110], [130, 20, 190, 80]]), ['cat', 'cat'])]
    dets = [(np.array([[22, 18, 92, 98], [18, 24, 86, 104], [128, 50, 188, 128]]), ['cat'] * 3, [.9, .8, .5]),
            (np.array([[32, 28, 104, 108], [100, 110, 150, 145], [160, 50, 200, 110]]), ['cat'] * 3, [.7, .6, .4])]
    for method, ap in [('area', 17 / 30), ('11point', 31 / 55), ('coco', 173 / 303)]:
        assert abs(mean_ap(dets, gts, method=method)[0] - ap) < 1e-12
    assert abs(mean_ap(dets, gts, iou_thresh=.75)[0] - 5 / 12) < 1e-12
    np.testing.assert_allclose(pr_curves(dets, gts)['cat']['precision'], [1, 1 / 2, 2 / 3, 1 / 2, 3 / 5, 1 / 2])
    # a class with no object: left out; an image with no detection: its objects still count
    dogs = [(np.r_[b, [[0, 0, 50, 50]]], l + ['dog'], list(s) + [.95]) for b, l, s in dets]
    assert mean_ap(dogs, gts)[1].keys() == {'cat'}
    more = (dets + [(np.zeros((0, 4)), [], [])], gts + [(np.array([[10, 10, 60, 60]]), ['cat'])])
    assert abs(mean_ap(*more)[0] - 17 / 30 * 4 / 5) < 1e-12
    # ties in score keep the input order (image, then position), as pycocotools' mergesort
    t = [(np.array([[10, 10, 50, 50]]), ['cat']), (np.array([[60, 60, 120, 120]]), ['cat'])]
    p = [(np.array([[70, 0, 99, 20]]), ['cat'], [.5]), (t[1][0], ['cat'], [.5])]
    assert abs(mean_ap(p, t)[0] - 1 / 4) < 1e-12 and abs(mean_ap(p[::-1], t[::-1])[0] - 1 / 2) < 1e-12

def test_scale_invariance():
    preds, targs = rand_data(3)
    s = lambda b: np.asarray(b, float).reshape(-1, 4) / [W, H, W, H] * 2 - 1
    for it in (.5, None):
        a = mean_ap(preds, targs, it)[0]
        b = mean_ap([(s(b), l, sc) for b, l, sc in preds], [(s(b), l) for b, l in targs], it)[0]
        assert abs(a - b) < 1e-12

def test_match_dets_padding_and_duplicates():
    iou = torch.tensor([[[.9, -1.], [.8, -1.], [-1., -1.]]], dtype=torch.float64)   # 2 dets on one object, padding
    assert match_dets(iou, [.5]).tolist() == [[[True, False, False]]]

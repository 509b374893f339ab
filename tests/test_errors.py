"""Tests of `ssd_nbs.errors`: one hand-built case for each kind of TIDE error, with its delta AP worked out by hand;
properties (delta APs are never negative, fixing every error gives mAP 1, the base mAP is `mean_ap`'s); and the check
against `tidecv` 1.0.1, which runs with the installed numpy.

Two differences between `tidecv` and `mean_ap` are TIDE's and are taken out of the exact comparison:
* TIDE's 101 recall points are `x/100`, pycocotools' (and `mean_ap`'s) `np.linspace(0, 1, 101)`; they differ in the
  last bit at some points (0.07, 0.14, ...), so where a recall k/N falls exactly on one of them TIDE takes the next
  precision. With TIDE's `searchsorted` given pycocotools' points the delta APs agree to 1e-9; with its own points
  they agree to 0.01 (a recall point is 1/101 of the AP, and only a few points per class are hit; 2.1e-3 measured).
* TIDE averages over classes with detections but no object (AP 0); `mean_ap`, as pycocotools, leaves them out. So the
  random data sets give every class one detection that is sure to find its object.
"""
import json, math, types, contextlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from matplotlib.figure import Figure

from ssd_nbs.metrics import mean_ap, match_dets
from ssd_nbs.anchors import make_anchors, Anchors
from ssd_nbs.core import box_iou
from ssd_nbs.errors import (KINDS, tide_errors, error_counts, delta_aps, fix_errors, tide_match, errors_by_size,
                            COCO_AREAS, REL_AREAS, anchor_stats)
from ssd_nbs.report import error_report, format_errors, plot_errors

T = torch.tensor
A, B, C = [10, 10, 50, 50.], [60, 60, 90, 90.], [60, 10, 90, 40.]   # three places in a 100x100 image

def case(gts, dets):
    "gts: [(box, label)], dets: [(box, label, score)] of one image -> preds, targets"
    gb = T([b for b,_ in gts]).view(-1,4).double(); gl = T([l for _,l in gts], dtype=torch.long)
    db = T([b for b,*_ in dets]).view(-1,4).double(); dl = T([l for _,l,_ in dets], dtype=torch.long)
    return [(db, dl, T([s for *_,s in dets]).double())], [(gb, gl)]

def check(preds, targets, counts, dap):
    e = tide_errors(preds, targets)
    assert error_counts(e) == {k: counts.get(k, 0) for k in KINDS}
    da = delta_aps(e, 'area')
    for k,v in dap.items(): assert da['dAP'][k] == pytest.approx(v, abs=1e-12), k
    assert da['fixed'] == 1.
    return da

# --- one hand-built case per kind; AP is VOC's all-point area ---------------------------------------------------------

def test_classification():
    "Right place, wrong class: class 1's only object is missed (AP 0), fixed it is found (AP 1); class 2 has no object"
    check(*case([(A, 1)], [(A, 2, .9)]), dict(Cls=1), dict(Cls=1., Loc=0., Miss=0.))

def test_localisation():
    "Right class, IoU 0.45 with the object (18x40 of 40x40): between 0.1 and 0.5"
    check(*case([(A, 1)], [([10, 10, 28, 50], 1, .9)]), dict(Loc=1), dict(Loc=1., Cls=0., Miss=0.))

def test_both():
    "Class 2 at IoU 0.45 with class 1's object: class 2's AP is 1/2 (FP then TP), class 1's is 1/2 (one of two found)"
    p,t = case([(A, 1), (B, 1), (C, 2)], [([10, 10, 28, 50], 2, .9), (C, 2, .8), (B, 1, .5)])
    check(p, t, dict(Both=1, Miss=1), dict(Both=.25, Miss=.25, Cls=0., Loc=0.))

def test_duplicate():
    "A second box on a found object (IoU 0.95) between two true positives: AP 1/2 + 1/2 x 2/3, fixed 1"
    p,t = case([(A, 1), (B, 1)], [(A, 1, .9), ([10, 10, 50, 52], 1, .8), (B, 1, .7)])
    check(p, t, dict(Dupe=1), dict(Dupe=1/6, Bkg=0., Loc=0.))

def test_background():
    "A box far from every object, scored above the true positive: precision 1/2 at recall 1"
    check(*case([(A, 1)], [(A, 1, .5), ([70, 70, 90, 90], 1, .9)]), dict(Bkg=1), dict(Bkg=.5, Dupe=0.))

def test_missed():
    "One of two objects found: AP 1/2; without the missed one, 1"
    check(*case([(A, 1), (B, 1)], [(A, 1, .9)]), dict(Miss=1), dict(Miss=.5, FalseNeg=.5, FalsePos=0.))

def test_image_without_objects_and_without_detections():
    "Detections on an image with no object are background; objects of an image with no detection are missed"
    p1,t1 = case([], [(A, 1, .9)])
    p2,t2 = case([(A, 1)], [])
    e = tide_errors(p1 + p2, t1 + t2)
    assert error_counts(e) == dict(Cls=0, Loc=0, Both=0, Dupe=0, Bkg=1, Miss=1)

def test_best_scored_error_fixes_its_object():
    "Two Loc errors about one object (TIDE's BestGTMatch): fixing makes the better one a TP and removes the other"
    p,t = case([(A, 1)], [([10, 10, 28, 50], 1, .6), ([12, 10, 30, 50], 1, .9)])
    e = tide_errors(p, t)
    assert e['det']['fix'].tolist() == [True, False] and e['det']['score'].tolist() == pytest.approx([.9, .6])
    (fp,), _ = fix_errors(e, ('Loc',))
    assert fp[0].tolist() == [A] and fp[2].tolist() == pytest.approx([.9])

def test_labels_outside_classes_are_left_out():
    p,t = case([(A, 1), (B, 3)], [(A, 1, .9), (B, 3, .8)])
    e = tide_errors(p, t, classes=[1])
    assert len(e['det']['img']) == 1 and len(e['gt']['img']) == 1 and e['classes'] == [1]

# --- random detections: properties --------------------------------------------------------------------------------

def random_dets(seed, n_img=20, n_cls=3, tie_decimals=None, sure_tp=False):
    "Jittered copies of the objects (some relabelled), random boxes, empty images; `sure_tp`: one found object a class"
    rng = np.random.default_rng(seed)
    preds, targs = [], []
    for i in range(n_img):
        m = int(rng.integers(0, 8)); xy = rng.uniform(0, 80, (m,2))
        gb = np.concatenate([xy, xy + rng.uniform(5, 30, (m,2))], 1); gl = rng.integers(1, n_cls+1, m)
        k = int(rng.integers(0, 3*m+1)) if m else 0; src = rng.integers(0, max(m, 1), k)
        db = gb[src] + rng.normal(0, 1, (k,4)) * rng.choice([1, 4, 8], (k,1)) if m else np.zeros((0,4))
        db[:,2:] = np.maximum(db[:,2:], db[:,:2] + 1)
        dl = np.where(rng.random(k) < .2, rng.integers(1, n_cls+1, k), gl[src] if m else 0)
        r = int(rng.integers(0, 3)); rx = rng.uniform(0, 90, (r,2))
        db = np.concatenate([db, np.concatenate([rx, rx + rng.uniform(3, 20, (r,2))], 1)])
        dl = np.concatenate([dl, rng.integers(1, n_cls+1, r)]).astype(np.int64)
        ds = rng.random(len(db))
        if tie_decimals is not None: ds = ds.round(tie_decimals)
        if i == 0 and sure_tp:
            b = np.array([[100. + 20*c, 100, 110 + 20*c, 110] for c in range(n_cls)]); l = np.arange(1, n_cls+1)
            gb, gl = np.concatenate([gb, b]), np.concatenate([gl, l])
            db, dl, ds = np.concatenate([db, b]), np.concatenate([dl, l]), np.concatenate([ds, np.ones(n_cls)])
        preds.append((T(db), T(dl), T(ds))); targs.append((T(gb).view(-1,4), T(gl)))
    return preds, targs

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 25), st.sampled_from([None, 1]))
def test_delta_aps_are_not_negative_and_fixing_all_gives_1(seed, n_img, ties):
    p,t = random_dets(seed, n_img, tie_decimals=ties)
    e = tide_errors(p, t)
    for method in ('area', 'coco'):
        da = delta_aps(e, method)
        assert da['mAP'] == pytest.approx(mean_ap(p, t, method=method)[0], abs=1e-12, nan_ok=True)
        assert all(v >= -1e-12 for v in da['dAP'].values() if not math.isnan(v)), da
        if not math.isnan(da['fixed']): assert da['fixed'] == pytest.approx(1.)
        else: assert not (e['gt']['found'] | ~e['gt']['missed']).any()     # nothing left to find

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6))
def test_greedy_match_is_match_dets(seed):
    g = torch.Generator().manual_seed(seed)
    iou = torch.rand(4, 9, 6, generator=g, dtype=torch.float64).round(decimals=1)   # with ties
    assert torch.equal(tide_match(iou, .5) >= 0, match_dets(iou, [.5])[:,0])

@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6))
def test_kinds_are_a_partition(seed):
    "Every detection is a TP or one kind; every object is found, missed, or fixable by one Cls/Loc error"
    p,t = random_dets(seed)
    e = tide_errors(p, t)
    d,g = e['det'],e['gt']
    assert len(d['kind']) == sum(len(o[0]) for o in p) and len(g['img']) == sum(len(o[0]) for o in t)
    assert int((d['kind'] < 0).sum()) == int(g['found'].sum())
    fixed = torch.zeros(len(g['img']), dtype=torch.bool); fixed[d['gt'][d['fix']]] = True
    assert torch.equal(g['found'] | g['missed'] | fixed, torch.ones_like(fixed)) and not (g['missed'] & fixed).any()

# --- tidecv ------------------------------------------------------------------------------------------------------

tidecv = pytest.importorskip('tidecv')
import tidecv.ap

def tide_ref(preds, targets): # (counts, dAPs in [0,1], mAP) from tidecv on the same detections
    gt,pr = tidecv.Data('gt'), tidecv.Data('pr')
    for i,((db,dl,ds),(gb,gl)) in enumerate(zip(preds, targets)):
        gt.add_image(i, str(i))                                        # TIDE evaluates only the images of `gt`
        for b,l in zip(gb.tolist(), gl.tolist()): gt.add_ground_truth(i, l, [b[0], b[1], b[2]-b[0], b[3]-b[1]])
        for b,l,s in zip(db.tolist(), dl.tolist(), ds.tolist()): pr.add_detection(i, l, s, [b[0], b[1], b[2]-b[0], b[3]-b[1]])
    t = tidecv.TIDE(); run = t.evaluate(gt, pr)
    dap = t.get_main_errors()['pr'] | t.get_special_errors()['pr']
    return {k.short_name: v for k,v in run.count_errors().items()}, {k: v/100 for k,v in dap.items()}, run.ap/100

@contextlib.contextmanager
def linspace_points():
    "TIDE's `searchsorted`, given pycocotools' recall points `np.linspace(0, 1, 101)` instead of its `x/100`"
    shim = types.ModuleType('np'); shim.__dict__.update(np.__dict__)
    shim.searchsorted = lambda a, v, side='left': np.searchsorted(a, np.linspace(0, 1, len(v)), side=side)
    old, tidecv.ap.np = tidecv.ap.np, shim
    try: yield
    finally: tidecv.ap.np = old

def _compare(seed, n_img):
    p,t = random_dets(seed, n_img, sure_tp=True)
    cnt,dap,m = tide_ref(p, t)
    e = tide_errors(p, t); da = delta_aps(e, 'coco')
    assert cnt == error_counts(e)
    return max([abs(m - da['mAP'])] + [abs(dap[k] - v) for k,v in da['dAP'].items()])

@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 30))
def test_same_as_tidecv_with_pycocotools_points(seed, n_img):
    with linspace_points(): assert _compare(seed, n_img) < 1e-9

@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 30))
def test_close_to_tidecv_with_its_own_points(seed, n_img):
    assert _compare(seed, n_img) < 0.01

def test_hand_built_cases_as_tidecv_counts_them():
    for gts,dets in [([(A, 1)], [(A, 2, .9)]), ([(A, 1), (B, 1), (C, 2)], [([10, 10, 28, 50], 2, .9), (C, 2, .8), (B, 1, .5)]),
                     ([(A, 1), (B, 1)], [(A, 1, .9), ([10, 10, 50, 52], 1, .8), (B, 1, .7)])]:
        p,t = case(gts, dets)
        assert tide_ref(p, t)[0] == error_counts(tide_errors(p, t))

# --- sizes, anchors, the report ----------------------------------------------------------------------------------

def test_size_bins_cover_every_object():
    p,t = random_dets(3, 30)
    e = tide_errors(p, t)
    for bins,sizes in ((COCO_AREAS, None), (REL_AREAS, [(100, 100)]*30)):
        r = errors_by_size(e, bins, sizes)
        assert sum(v['objects'] for v in r.values()) == len(e['gt']['img'])
        assert sum(v['missed'] for v in r.values()) == int(e['gt']['missed'].sum())
    one = errors_by_size(e, dict(all=(0, math.inf)))['all']
    assert one['AP'] == pytest.approx(mean_ap(p, t)[0]) and one['recall'] == pytest.approx(float(e['gt']['found'].double().mean()))

def test_anchor_stats_against_a_loop():
    grids = (4, 2, 1); anc = make_anchors(grids, (.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)))
    g = torch.Generator().manual_seed(0)
    gts = []
    for n in (3, 0, 5):
        c, wh = torch.rand(n, 2, generator=g)*1.6 - .8, torch.rand(n, 2, generator=g)*.8 + .05
        gts.append(torch.cat([c - wh/2, c + wh/2], 1))
    s = anchor_stats(gts, Anchors(grids, (.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)), .5))
    ends = np.cumsum([q*q*9 for q in grids])
    best = [(float(box_iou(b[None], anc)[0].max()), int(np.searchsorted(ends, int(box_iou(b[None], anc)[0].argmax()), side='right')))
            for bs in gts for b in bs]
    assert [r['best_for'] for r in s['grids']] == [sum(j == k for _,j in best) for k in range(3)]
    assert s['unreached'] == sum(v < .5 for v,_ in best) and s['objects'] == 8
    assert sum(r['matched_share'] for r in s['grids']) == pytest.approx(1.)

def test_report_is_json_and_draws():
    p,t = random_dets(5, 12)
    rep = error_report(p, t, sizes=[(128, 128)]*12, anchors=Anchors((4, 2, 1), (1.,), ((1., 1.),), .5))
    back = json.loads(json.dumps(rep, allow_nan=False))
    assert back['errors'] == rep['errors'] and set(back['errors']) == set(KINDS)
    assert rep['fixed_mAP'] == pytest.approx(1.) and 'relative' in rep['by_size'] and rep['anchors']['objects'] == sum(len(o[0]) for o in t)
    assert 'Loc localisation' in format_errors(rep)
    assert isinstance(plot_errors(rep), Figure)

def test_learner_error_report_and_save_errors(tmp_path):
    "An untrained SSD on a few shapes: the report's mAP is `MeanAP`'s, and `save_errors` writes errors.json/png"
    from ssd_nbs.data import make_shapes, ssd_dls
    from ssd_nbs.readers import voc_items
    from ssd_nbs.learner import ssd_learner
    from ssd_nbs.body import tiny_resnet
    from ssd_nbs.learner import MeanAP
    from ssd_nbs.report import save_errors
    torch.set_num_threads(1)
    path = make_shapes(tmp_path/'voc', n=12, size=64)
    dls = ssd_dls(voc_items(path, 'train'), valid_items=voc_items(path, 'val'), size=64, bs=4)
    learn = ssd_learner(dls, arch=tiny_resnet, pretrained=False, grids=(4,2,1), nh=16, metrics=[MeanAP()])
    learn.model.eval()
    m = learn.validate()[-1]
    rep = learn.error_report(show=False)
    assert (rep['mAP'] is None and math.isnan(m)) or rep['mAP'] == pytest.approx(m, abs=1e-9)
    assert rep['images'] == 2 and json.dumps(rep, allow_nan=False)
    assert len(rep['files']) == 2 and [r['grid'] for r in rep['anchors']['grids']] == [4, 2, 1]
    save_errors(learn, tmp_path)
    assert json.loads((tmp_path/'errors.json').read_text())['errors'] == rep['errors']
    assert (tmp_path/'errors.png').stat().st_size > 0

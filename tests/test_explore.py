"""The explorers of `31_explore`, driven from code as a learner drives them with the mouse, and every `check_` of the
lessons' exercises: it accepts the solution, rejects a wrong answer, and says 'not answered yet' to a stub."""
import math, warnings
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')
import matplotlib; matplotlib.use('Agg')
import pytest, torch
import torch.nn.functional as F
import ssd_nbs.explore as E
from ssd_nbs.explore import *
from ssd_nbs.exercises import *
from ssd_nbs.loss import SSDLoss
from ssd_nbs.core import box_iou

def test_match_explorer_counts_what_it_shows():
    ex = MatchExplorer(box=(-0.4,-0.5,0.5,0.), match_iou=0.5)
    assert ex.state['n_matched'] == 1 and ex.state['n_anchors'] == 16       # one cell at IoU 0.56, one at 0.4
    assert ex.set(match_iou=0.3)['n_matched'] == 2
    assert ex.set(match_iou=0.9)['n_matched'] == 1 and ex.state['forced']   # only the best anchor, forced
    n = ex.n_draws
    ex.set(grids='4x4+2x2+1x1', anchors='k=9: zooms x ratios')
    assert ex.n_draws == n+2 and ex.state['n_anchors'] == 189               # each control redraws

def test_match_explorer_the_cyclist_moves_to_2x2():
    ex = MatchExplorer(grids='4x4', anchors='k=9: zooms x ratios', box=(0.2,-0.5,0.8,0.9))
    assert ex.state['forced']                                                # no 4x4 anchor reaches 0.5
    ex.set(grids='4x4+2x2+1x1')
    assert not ex.state['forced'] and 16*9 <= ex.state['best'] < 20*9        # its best anchor is on the 2x2 grid
    ex.set(grids='4x4+1x1')
    assert ex.state['forced'] and ex.state['n_matched'] == 1

def test_match_view_is_a_figure():
    fig,c = match_view((-0.3,-0.5,0.5,0.7), (4,2,1), ZOOMS, RATIOS, 0.3)
    assert c['n_matched'] == 7 and len(fig.axes) == 1

def test_detection_explorer_counts_what_it_keeps():
    dx = DetectionExplorer([toy_detections()])
    assert (dx.state['n_kept'], dx.state['precision']) == (4, 0.5) and abs(dx.state['recall'] - 2/3) < 1e-6
    assert dx.set(nms_iou=0.7)['n_kept'] == 6                                # no pair overlaps by more than 0.6
    assert dx.set(nms_iou=0.5, score_thresh=0.5)['n_kept'] == 3
    assert dx.set(score_thresh=0.95)['n_kept'] == 0 and dx.state['recall'] == 0
    assert dx.set(score_thresh=0.3, max_det=2)['n_kept'] == 2

def test_detection_counts_use_the_package_decoding():
    raw = toy_detections()
    b,l,s = E.detections(raw.preds, raw.loss_func.anchors, E.PostProcess(0.3, 0.5, 100))[0]
    assert detection_counts(raw)['n_kept'] == len(b)

def _mat(box, g, z, r, t): return E.match_counts(box, g, z, r, t)['n_matched']
box3, tall, cyc = (-0.4,-0.5,0.5,0.), (-0.4,-0.5,-0.1,0.5), (0.2,-0.5,0.8,0.9)
raw = toy_detections()
preds,bb,lbl,anc = loss_example()
bbox,clas = SSDLoss(anc).parts(preds, bb, lbl)
def iou_ok(a, b): return box_iou(a[None], b[None])[0,0]

# check, its right answer, a wrong one, its unanswered stub
CASES = {
  'to_scaled': (check_to_scaled, lambda b,w,h: b/torch.tensor([w,h,w,h])*2-1, lambda b,w,h: b/torch.tensor([w,h,w,h]), lambda b,w,h: None),
  'iou_by_hand': (check_iou_by_hand, 6/26, 6/32, None),
  'dirty_counts': (check_dirty_counts, {'kept': 3, 'clipped': 2, 'dropped': 3}, {'kept': 4, 'clipped': 1, 'dropped': 2}, {'kept': None}),
  'negative_targets': (check_negative_targets, (torch.zeros(2,4), [0,0]), (torch.zeros(0,4), []), (None, None)),
  'feature_sides': (check_feature_sides, {8: 28, 16: 14, 32: 7}, {8: 28, 16: 14, 32: 8}, None),
  'out_side': (check_out_side, lambda s,st: math.ceil(s/st), lambda s,st: s//st, lambda s,st: None),
  'box_l1': (check_box_l1, lambda p,t: (p-t).abs().mean(), lambda p,t: (p-t).abs().sum(), lambda p,t: None),
  'single_loss': (lambda a: check_single_loss(a, 0.3), 0.2+0.3*math.log(4), 0.2+math.log(4), None),
  'iou': (check_iou, iou_ok, lambda a,b: torch.tensor(0.5), lambda a,b: None),
  'n_matched': (lambda a: check_n_matched(a, box3, (4,)), {0.3: 2, 0.5: 1, 0.7: 1}, {0.3: 2, 0.5: 2, 0.7: 0}, {0.3: None}),
  'cell_centres': (check_cell_centres, lambda g: (torch.arange(g)+0.5)*2/g-1, lambda g: torch.arange(g)*2/g-1, lambda g: None),
  'clamp': (check_clamp, 62.5, 1000., None),
  'n_anchors': (lambda a: check_n_anchors(a, (4,2,1), ZOOMS, RATIOS), 189, 21, None),
  'n_matched_k9': (lambda a: check_n_matched(a, tall, (4,), ZOOMS, RATIOS), 2, 1, None),
  'anchor_sizes': (check_anchor_sizes, lambda g,z,r: torch.tensor([[zz*a*2/g, zz*b*2/g] for zz in z for a,b in r]),
                   lambda g,z,r: torch.tensor([[zz*a/g, zz*b/g] for zz in z for a,b in r]), lambda g,z,r: None),
  'n_matched_no_2x2': (lambda a: check_n_matched(a, cyc, (4,1), ZOOMS, RATIOS), 1, 2, None),
  'halving': (lambda a: check_halving(a, 10), (10,5,3,2,1), (10,5,2,1), None),
  'n_outputs': (check_n_outputs, lambda gr,k,n: sum(g*g*k*(5+n) for g in gr), lambda gr,k,n: sum(g*g*k*(4+n) for g in gr), lambda gr,k,n: None),
  'loss_weights': (lambda a: check_loss_weights(a, 2., 0.5), float(2*bbox+0.5*clas), float(bbox+clas), None),
  'bce': (check_bce, lambda x,t: -(t*F.logsigmoid(x)+(1-t)*F.logsigmoid(-x)).sum(),
          lambda x,t: -(t*x.sigmoid().log()+(1-t)*(1-x.sigmoid()).log()).mean(), lambda x,t: None),
  'nms_kept': (check_nms_kept, {0.3: 2, 0.5: 3, 0.7: 4}, {0.3: 1, 0.5: 3, 0.7: 4}, {0.3: None}),
  'kept': (lambda a: check_kept(a, raw, 0.3, 0.9), 6, 4, None),
  'to_pixels': (check_to_pixels, E.to_pixels, lambda b,w,h: (b+1)/2*torch.tensor([w,h,w,h]), lambda b,w,h: None),
  'pr': (lambda a: check_pr(*a), ([1,.5,2/3,.75,.6], [.2,.2,.4,.6,.6]), ([1,.5,2/3,.75,.6], [.2,.4,.6,.6,.6]), (None, None)),
  'envelope': (check_envelope, lambda p: p.flip(0).cummax(0).values.flip(0), lambda p: p.cummax(0).values, lambda p: None),
  'error_kinds': (check_error_kinds, {'a':'Dupe','b':'Cls','c':'Loc','d':'Bkg'}, {'a':'Dupe','b':'Loc','c':'Loc','d':'Bkg'}, None),
  'miss_count': (check_miss_count, 1, 2, None),
  'best_grid': (lambda a: check_best_grid(a, 39*224/640), 14, 28, None),
}

@pytest.mark.parametrize('name', CASES)
def test_check_accepts_the_solution_and_rejects_a_wrong_answer(name):
    check,good,bad,stub = CASES[name]
    assert check(good) == 'right', check(good)
    v = check(bad)
    assert v not in ('right', 'not answered yet') and '\n' not in v, v
    assert check(stub) == 'not answered yet'

def test_every_check_is_tested():
    names = {n for n in dir(E) if n.startswith('check_') and n != 'check_number'}
    tested = {c.__name__ for c,*_ in CASES.values()} | {'check_single_loss','check_n_matched','check_n_anchors','check_halving',
              'check_loss_weights','check_kept','check_pr','check_best_grid'}
    assert names <= tested, names - tested

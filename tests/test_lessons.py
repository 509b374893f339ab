"""What the lessons claim, checked on the functions they export: a degenerate box has IoU 0 (`00_boxes`), a box
round-trips through the activations and no activation overflows (`04_anchors`), every object gets an anchor and a lower
threshold matches more (`04_anchors`), big objects go to the coarse grids and small ones to the fine (`06_multiscale`),
the loss leaves unmatched anchors' boxes alone and pushes them to background (`04_anchors`, `07_loss`), the single box
stays in the image (`03_single_box`), mAP is 1 for perfect detections (`10_metrics`), and a training run beats the
untrained model (`08_single_shot`). And the lessons read as lessons: no markdown cell runs past about 250 words."""
import json, math, re
from pathlib import Path
import pytest, torch
from ssd_nbs.core import box_iou
from ssd_nbs.anchors import make_anchors, activ_to_bbox, bbox_to_activ, match_anchors

NBS = Path(__file__).resolve().parent.parent/'nbs'
LESSONS = sorted((NBS/'course').glob('*.ipynb'))

def cells(nb:Path, kind:str)->list: return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == kind]

def test_the_lessons_are_there(): assert len(LESSONS) >= 12 and LESSONS[0].name == '00_boxes.ipynb'

@pytest.mark.parametrize('nb', LESSONS, ids=lambda p: p.stem)
def test_markdown_cells_are_short(nb):
    long = [(i, n) for i,s in enumerate(cells(nb, 'markdown')) if (n := len(re.findall(r'\S+', s))) > 250]
    assert not long, f'{nb.name}: markdown cells over 250 words (index among markdown cells, words): {long}'

# ---- 00_boxes

def test_iou_of_known_boxes_and_of_a_degenerate_box():
    a,b = torch.tensor([[0.,0,2,2]]), torch.tensor([[1.,1,3,3], [2.,2,3,3], [0.,0,2,2]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1/7, 0., 1.]]))         # overlap 1 of a union of 7
    flat = torch.tensor([[1.,1,1,3], [0.,0,0,0]])                                   # no area: 0, not the nan of 0/0
    assert torch.equal(box_iou(flat, flat), torch.zeros(2, 2))

# ---- 04_anchors: anchors, the box code, matching

def test_anchors_tile_each_grid_in_order():
    anc = make_anchors((4,2,1))
    assert anc.shape == (21, 4) and anc.min() == -1 and anc.max() == 1
    torch.testing.assert_close(anc[0], torch.tensor([-1., -1, -.5, -.5]))          # 4x4 first, row by row
    torch.testing.assert_close(anc[16], torch.tensor([-1., -1, 0, 0]))             # then the 2x2
    torch.testing.assert_close(anc[20], torch.tensor([-1., -1, 1, 1]))             # then the whole image

def test_boxes_round_trip_through_the_activations():
    anc = make_anchors((4,2,1), zooms=(0.7, 1., 1.3), ratios=((1.,1.), (1.,.5), (.5,1.)))
    g = torch.Generator().manual_seed(0)
    ctr,wh = torch.rand(len(anc), 2, generator=g)*1.2-.6, torch.rand(len(anc), 2, generator=g)*.6+.1
    box = torch.cat([ctr-wh/2, ctr+wh/2], -1)                                       # (n_anchors, 4) in [-1,1]
    torch.testing.assert_close(activ_to_bbox(bbox_to_activ(box, anc), anc), box, atol=1e-5, rtol=0)
    assert activ_to_bbox(torch.full((1, len(anc), 4), 1e4), anc).isfinite().all()   # the clamp: no overflow

def test_every_object_gets_an_anchor_and_a_lower_threshold_matches_more():
    anc = make_anchors((4,2,1), zooms=(0.7, 1., 1.3), ratios=((1.,1.), (1.,.5), (.5,1.)))
    gt = torch.tensor([[-.9,-.9,-.85,-.85], [-.5,-.6,.5,.7], [.1,.2,.9,.4], [.3,-.9,.5,.9]])  # tiny, large, wide, tall
    n = {}
    for t in (0.3, 0.5, 0.7):
        m = match_anchors(gt, anc, t)                                               # (n_anchors,) object index or -1
        assert set(m[m >= 0].tolist()) == {0, 1, 2, 3}                              # nobody is left without an anchor
        iou = box_iou(gt, anc)                                                      # (4, n_anchors)
        assert (m[iou.max(0).values >= t] >= 0).all()                               # every anchor over the threshold trains
        n[t] = int((m >= 0).sum())
    assert n[0.3] > n[0.5] > n[0.7] >= 4

# ---- 06_multiscale

def test_big_objects_match_the_coarse_grids_and_small_ones_the_fine():
    grids = (4,2,1)
    anc = make_anchors(grids)
    grid_of = torch.cat([torch.full((g*g,), g) for g in grids])                     # (n_anchors,) the grid of each anchor
    best = lambda box: int(grid_of[box_iou(torch.tensor([box]), anc)[0].argmax()])
    assert best([-.9,-.9,.9,.95]) == 1 and best([-1.,-1,-.05,0]) == 2
    assert best([.1,.1,.45,.5]) == 4 and best([-.8,.55,-.55,.9]) == 4

# ---- 04_anchors, 07_loss: what the loss does with the anchors it did not match

def test_the_loss_ignores_unmatched_boxes_and_pushes_them_to_background():
    from ssd_nbs.loss import SSDLoss
    from ssd_nbs.exercises import loss_example
    (box_act,clas),bb,lbl,anc = loss_example()
    box_act,clas = box_act[:1].clone().requires_grad_(), clas[:1].clone().requires_grad_()
    SSDLoss(anc)((box_act, clas), bb[:1], lbl[:1]).backward()
    m = match_anchors(bb[:1], anc)[0]                                               # (n_anchors,) matched object or -1
    rest = m < 0
    assert 0 < (~rest).sum() < len(anc)
    assert (box_act.grad[0, rest] == 0).all() and (box_act.grad[0, ~rest] != 0).any()  # box loss: the matched only
    assert (clas.grad[0, rest, 1:] > 0).all()                                       # every class score of the rest goes down
    none = SSDLoss(anc)((box_act, clas), bb[:1, :0], lbl[:1, :0])                   # an image without objects
    assert none.isfinite() and none > 0

# ---- 03_single_box

def test_the_single_box_stays_in_the_image():
    from ssd_nbs.single import SingleBoxHead
    torch.manual_seed(0)
    head = SingleBoxHead(8, 3, g=2, nh=16).eval()
    with torch.no_grad(): box,clas = head(torch.randn(5, 8, 4, 4)*1e3)             # features far out of range
    assert box.shape == (5, 4) and clas.shape == (5, 4) and box.abs().max() <= 1

# ---- 10_metrics

def test_map_is_one_for_perfect_detections_and_zero_for_wrong_classes():
    from ssd_nbs.metrics import mean_ap
    boxes = [torch.tensor([[0.,0,10,10], [20.,20,40,50]]), torch.tensor([[5.,5,15,25]])]
    labels = [torch.tensor([1, 2]), torch.tensor([1])]
    targets = list(zip(boxes, labels))
    perfect = [(b, l, torch.ones(len(b))) for b,l in targets]
    assert mean_ap(perfect, targets)[0] == pytest.approx(1.)
    swapped = [(b, 3-l, torch.ones(len(b))) for b,l in targets]                      # right places, wrong classes
    assert mean_ap(swapped, targets)[0] == 0
    assert math.isnan(mean_ap(perfect, [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]*2)[0])

# ---- 08_single_shot: training works

def test_training_beats_the_untrained_model(trained_learner):
    "The trained learner's validation loss is below the same model's before training (the run's seed, re-drawn)"
    learn,untrained = trained_learner
    with learn.no_bar(): assert learn.validate()[0] < untrained

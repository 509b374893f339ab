"Property tests of the box maths, the matching and the loss, on inputs hypothesis makes up."
import math
import torch
import torchvision
from hypothesis import given, settings, strategies as st

from ssd_nbs.core import box_iou, xyxy2cthw, cthw2xyxy, box_area
from ssd_nbs.anchors import make_anchors, match_anchors, activ_to_bbox, bbox_to_activ
from ssd_nbs.loss import SSDLoss

settings.register_profile('ci', max_examples=60, deadline=None)
settings.load_profile('ci')

coord = st.floats(-1, 1, allow_nan=False, width=32)

@st.composite
def boxes(draw, n_min=0, n_max=12, valid=True):
    n = draw(st.integers(n_min, n_max))
    pts = torch.tensor(draw(st.lists(st.tuples(coord, coord, coord, coord), min_size=n, max_size=n)), dtype=torch.float).view(n, 4)
    if valid: pts = torch.cat([torch.minimum(pts[:, :2], pts[:, 2:]), torch.maximum(pts[:, :2], pts[:, 2:])], 1)
    return pts

@given(boxes(1), boxes(1))
def test_box_iou_matches_torchvision_and_is_bounded(a, b):
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert not iou.isnan().any() and (iou >= 0).all() and (iou <= 1 + 1e-6).all()
    ok = (box_area(a) > 1e-6)[:, None] & (box_area(b) > 1e-6)[None]   # torchvision gives NaN for empty unions
    assert torch.allclose(iou[ok], torchvision.ops.box_iou(a, b)[ok], atol=1e-5)

@given(boxes(1, valid=False), boxes(1, valid=False))
def test_box_iou_symmetric_and_finite_on_any_boxes(a, b):
    assert torch.allclose(box_iou(a, b), box_iou(b, a).T)
    assert box_iou(a, b).isfinite().all()

@given(boxes(1))
def test_cthw_round_trip(b):
    assert torch.allclose(cthw2xyxy(xyxy2cthw(b)), b, atol=1e-6)

grids = st.sampled_from([(4,), (4, 2, 1), (2, 1)])
zooms = st.sampled_from([(1.,), (0.7, 1., 1.3)])
ratios = st.sampled_from([((1., 1.),), ((1., 1.), (1., .5), (.5, 1.))])

@given(grids, zooms, ratios, st.integers(0, 2**31 - 1))
def test_activation_round_trip(g, z, r, seed):
    anc = make_anchors(g, z, r)
    a = torch.randn(3, len(anc), 4, generator=torch.Generator().manual_seed(seed)) * 4
    assert torch.allclose(bbox_to_activ(activ_to_bbox(a, anc), anc), a, atol=1e-3)

@given(grids, zooms, ratios, boxes(0, 8), st.floats(0.3, 0.7))
def test_match_every_gt_gets_an_anchor_and_padding_none(g, z, r, gt, thresh):
    anc = make_anchors(g, z, r)
    n = len(gt)
    pad = torch.zeros(3, 4)
    batch = torch.cat([gt, pad])[None].repeat(2, 1, 1)                    # (2, n+3, 4), padding at the end
    valid = torch.arange(n + 3)[None].repeat(2, 1) < n
    m = match_anchors(batch, anc, thresh, valid)
    for row in m:
        matched = set(row[row >= 0].tolist())
        assert all(i < n for i in matched)                                  # padding never matched
        if len(anc) >= n: assert matched == set(range(n))                   # every gt keeps an anchor
    if n:
        iou = box_iou(gt, anc)
        assert (m[0][iou.max(0).values >= thresh] >= 0).all()               # every anchor over thresh is matched

@given(st.integers(1, 6), st.integers(0, 6), st.floats(0., 3.), st.sampled_from([1., 1e2, 1e4]), st.integers(0, 2**31 - 1))
def test_ssd_loss_finite(bs, n_gt, gamma, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    anc = make_anchors((4, 2, 1), (0.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)))
    preds = ((torch.randn(bs, len(anc), 4, generator=gen) * scale).requires_grad_(),
             (torch.randn(bs, len(anc), 4, generator=gen) * scale).requires_grad_())
    p = torch.rand(bs, n_gt, 2, 2, generator=gen) * 2 - 1
    bb = torch.cat([p.min(2).values, p.max(2).values], -1)
    lbl = torch.randint(0, 4, (bs, n_gt), generator=gen)                  # some 0s: padding
    bb = bb * (lbl > 0)[..., None]
    loss = SSDLoss(anc, gamma=gamma)(preds, bb, lbl)
    loss.backward()
    assert loss.isfinite() and all(t.grad.isfinite().all() for t in preds)

# ---- added for issue 6 (reliability): the other round trip, crowded images, all-padding batches, extreme activations

@given(grids, zooms, ratios, boxes(1, 8))
def test_bbox_round_trip(g, z, r, b):
    "boxes -> activations -> boxes, for any box with an area (the other direction of `test_activation_round_trip`)"
    b = b[((b[:, 2:] - b[:, :2]) > 1e-2).all(1)]
    anc = make_anchors(g, z, r)[:len(b)]
    b = b[:len(anc)]
    assert torch.allclose(activ_to_bbox(bbox_to_activ(b, anc), anc), b, atol=1e-4)

@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_match_more_objects_than_anchors(n_extra, seed):
    "An image with more objects than anchors: every anchor serves a distinct object, padding is never matched"
    anc = make_anchors((2, 1), (1.,), ((1., 1.),))                             # 5 anchors
    p = torch.rand(len(anc) + n_extra, 2, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    gt = torch.cat([p.min(1).values, p.max(1).values], -1)
    n = len(gt)
    batch = torch.cat([gt, torch.zeros(2, 4)])[None]                         # (1, n+2, 4), padding at the end
    m = match_anchors(batch, anc, 0.5, torch.arange(n + 2)[None] < n)[0]
    assert (m >= 0).all() and (m < n).all()                                  # all anchors used, none on padding
    assert len(set(m.tolist())) == len(anc)                                  # by as many distinct objects

@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.sampled_from([1e6, 1e12, 1e30]), st.floats(0., 3.), st.integers(0, 2**31 - 1))
def test_ssd_loss_finite_on_all_padding_and_extreme_activations(bs, n_gt, scale, gamma, seed):
    "A batch of padding only (labels all 0), and activations as large as a float32 allows: a finite loss and gradients"
    gen = torch.Generator().manual_seed(seed)
    anc = make_anchors((4, 2, 1), (0.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)))
    preds = ((torch.randn(bs, len(anc), 4, generator=gen) * scale).requires_grad_(),
             (torch.randn(bs, len(anc), 4, generator=gen) * scale).requires_grad_())
    for bb,lbl in ((torch.zeros(bs, n_gt, 4), torch.zeros(bs, n_gt, dtype=torch.long)),      # all padding
                   (torch.tensor([[-.5, -.5, .5, .5]]).repeat(bs, n_gt, 1), torch.ones(bs, n_gt, dtype=torch.long))):
        loss = SSDLoss(anc, gamma=gamma)(preds, bb, lbl)
        g = torch.autograd.grad(loss, preds)
        assert loss.isfinite() and all(t.isfinite().all() for t in g), (scale, loss)

@given(boxes(1, 8), st.integers(0, 2**31 - 1))
def test_decode_clamp_never_lowers_iou_with_a_box_in_the_image(gt, seed):
    "`SSDLoss.activation` clamps the decoded boxes to the image: that cuts only what lies outside, so no box inside gets a worse IoU"
    anc = make_anchors((2, 1), (0.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)))
    act = torch.randn(1, len(anc), 4, generator=torch.Generator().manual_seed(seed)) * 3
    clamped,_ = SSDLoss(anc).activation((act, torch.zeros(1, len(anc), 2)))
    assert (box_iou(gt, clamped[0]) >= box_iou(gt, activ_to_bbox(act, anc)[0]) - 1e-5).all()

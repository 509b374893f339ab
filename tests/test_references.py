"""The fast paths of the package against their plain, exported references, on inputs hypothesis makes up:
`match_anchors` against `greedy_match`, `SSDLoss` against `ssd_loss_loop`, its class loss against `bce_loss`."""
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import ssd_nbs.anchors as anchors
from ssd_nbs.anchors import make_anchors, match_anchors, greedy_match
from ssd_nbs.loss import SSDLoss, ssd_loss_loop, bce_loss, _BCEOneHot

settings.register_profile('ci', max_examples=60, deadline=None)
settings.load_profile('ci')

ANCHORS = [make_anchors(), make_anchors((4,2,1), (0.7,1.,1.3), ((1.,1.),(1.,.5),(.5,1.))), make_anchors((2,1)),
           make_anchors((8,4,2,1), (0.7,1.,1.3), ((1.,1.),(1.,.5),(.5,1.)))]

@st.composite
def batches(draw, n_max=14):
    "A padded batch of ground truths (bs, n, 4) and which are real, with the ties real data has"
    anc = ANCHORS[draw(st.integers(0, len(ANCHORS)-1))]
    bs,n = draw(st.integers(1, 5)), draw(st.integers(0, n_max))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31-1)))
    p = torch.rand(bs, n, 2, 2, generator=g)*2-1
    kind = draw(st.sampled_from(['random', 'coarse', 'empty', 'duplicate', 'anchors']))
    if kind == 'coarse': p = (p*4).round()/4                               # boxes on anchor edges: IoU ties
    if kind == 'empty': p[:,:,1] = p[:,:,0]                                # boxes of no area
    b = torch.cat([p.min(2).values, p.max(2).values], -1)                 # (bs, n, 4)
    if kind == 'duplicate' and n > 1: b[:,1] = b[:,0]                      # two objects with the same box
    if kind == 'anchors': b = anc[torch.randint(0, len(anc), (bs,n), generator=g)]   # boxes equal to anchors
    valid = torch.arange(n)[None] < torch.randint(0, n+1, (bs,1), generator=g)       # some images: padding only
    return b*valid[...,None], valid, anc

@given(batches(), st.sampled_from([0., 0.3, 0.5, 0.7]))
def test_match_anchors_is_greedy_match(batch, match_iou):
    b,valid,anc = batch
    assert torch.equal(match_anchors(b, anc, match_iou, valid), greedy_match(b, anc, match_iou, valid))
    assert torch.equal(match_anchors(b, anc, match_iou), greedy_match(b, anc, match_iou))

@given(batches(n_max=30), st.sampled_from([0.3, 0.5]))
def test_match_anchors_is_greedy_match_a_chunk_at_a_time(batch, match_iou):
    "With a chunk of one IoU row, as for batches too large for the CPU's cache: the other code path, same matches"
    b,valid,anc = batch
    chunk,anchors._CHUNK = anchors._CHUNK,1
    try: assert torch.equal(match_anchors(b, anc, match_iou, valid), greedy_match(b, anc, match_iou, valid))
    finally: anchors._CHUNK = chunk

def test_match_many_boxes():
    "More objects than a grid has anchors: every anchor is taken once, and as many gts as anchors are served"
    anc = make_anchors((2,))
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 40, 2, 2, generator=g)*2-1
    b = torch.cat([p.min(2).values, p.max(2).values], -1)
    m = match_anchors(b, anc, 0.5)
    assert torch.equal(m, greedy_match(b, anc, 0.5)) and (m >= 0).all()

@given(batches(n_max=8), st.sampled_from([0., 2.]), st.integers(1, 6))
def test_ssd_loss_is_the_loop(batch, gamma, n_cls):
    b,valid,anc = batch
    g = torch.Generator().manual_seed(len(b))
    lbl = torch.randint(1, n_cls+1, valid.shape, generator=g) * valid
    preds = (torch.randn(len(b), len(anc), 4, generator=g, dtype=torch.float64),
             torch.randn(len(b), len(anc), n_cls+1, generator=g, dtype=torch.float64))
    got = torch.stack(SSDLoss(anc, 0.5, gamma).parts(preds, b.double(), lbl))
    want = torch.stack(ssd_loss_loop(preds, b.double(), lbl, anc, 0.5, gamma))
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-7), (got, want)      # sums of thousands of terms

@given(st.integers(1, 4), st.integers(1, 40), st.integers(1, 8), st.sampled_from([1e-3, 1., 30.]), st.integers(0, 2**31-1))
def test_class_loss_is_the_plain_bce(bs, n_anc, n_cls, scale, seed):
    "`_BCEOneHot`, value and gradient, is `bce_loss` (PyTorch's BCE with logits) against one-hot targets"
    g = torch.Generator().manual_seed(seed)
    clas = (torch.randn(bs, n_anc, n_cls+1, generator=g, dtype=torch.float64)*scale).requires_grad_()
    lbl = torch.randint(0, n_cls+1, (bs, n_anc), generator=g) * (torch.rand(bs, n_anc, generator=g) < 0.3)
    b,a = (lbl > 0).nonzero(as_tuple=True)
    got = _BCEOneHot.apply(clas, b, a, lbl[b,a])
    want = bce_loss(clas[...,1:], F.one_hot(lbl, n_cls+1)[...,1:].double())
    (gg,),(gw,) = torch.autograd.grad(got, clas), torch.autograd.grad(want, clas)
    assert torch.allclose(got, want, rtol=1e-9) and torch.allclose(gg, gw, atol=1e-12)

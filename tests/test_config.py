"""The config flows whole: `build_ssd` gives the weights it always gave for a seed, the grids a config derives are
those of its body's feature map (found without building a model), the model keeps its config from construction, no
part declares a default of a config setting, and `freeze_at` keeps the body's first layers as they came."""
import hashlib, inspect
from dataclasses import fields, replace
from unittest import mock
import pytest
import torch
from fastai.vision.all import Callback, set_seed

from ssd_nbs.body import ARCHS, make_body
from ssd_nbs.config import SSDConfig, RECIPES, build_ssd, config_grids, body_strides
from ssd_nbs.model import SSDHead, SSDModel, halving_grids, _dummy_eval
from ssd_nbs.learner import ssd_learner, frozen_layers, ssd_split, FreezeAt
from ssd_nbs.train import fit_run
from ssd_nbs.data import make_shapes, ssd_dls
from ssd_nbs.readers import voc_items
from ssd_nbs.cli import train_parser

torch.set_num_threads(1)
FIELDS = {f.name for f in fields(SSDConfig)}

# sha256 of the weights (state dict order) that `build_ssd(RECIPES[name], 3)` gives after `torch.manual_seed(42)`, and
# of the random state it leaves: taken from the `build_ssd` that unpacked the config into `SSDModel`'s arguments and
# attached `model.cfg` afterwards, so that the config flowing whole changes no seeded run.
PINNED = {'shapes': ('68839ef963003ca3', 'c22bcdc3c264e24c'), 'bccd': ('4104a6251d58d5c0', '1a6503b68114567f'),
          'data': ('d8ce5c8c7bb2367c', 'c4d82c891602c93f'), 'bccd_scratch': ('4e7ad349d50187ef', '0978adac0eaccc27')}

def _digest(sd:dict)->str: # sha256 of the names and bytes of the tensors of `sd`, in order
    h = hashlib.sha256()
    for k,v in sd.items(): h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

@pytest.mark.parametrize('name', list(PINNED))
def test_build_ssd_gives_the_pinned_weights(name):
    torch.manual_seed(42)
    model, loss = build_ssd(RECIPES[name], 3)
    assert (_digest(model.state_dict()), _digest({'rng': torch.random.get_rng_state()})) == PINNED[name]
    assert len(loss.anchors) == sum(g*g for g in model.cfg.grids) * RECIPES[name].k

def _feature_side(arch:str, stride, size:int)->int|None: # the side of the body's real output at `size`; None: it can't
    with torch.random.fork_rng():
        body = make_body(arch, pretrained=False, stride=stride)
        try:
            with torch.no_grad(): return body.eval()(torch.zeros(1, 3, size, size)).shape[-1]
        except RuntimeError: return None                                       # tiny_resnet on odd sides

CASES = [(r, a, s) for r in RECIPES for a in ARCHS for s in sorted({RECIPES[r].size, 96, 100, 224})]

@pytest.mark.parametrize('recipe,arch,size', CASES)
def test_config_grids_are_those_of_the_body_s_feature_map(recipe, arch, size):
    cfg = replace(RECIPES[recipe], arch=arch, size=size, grids=None)
    if cfg.stride not in body_strides(arch): cfg = replace(cfg, stride=None)   # tiny bodies stop at stride 8 or 16
    feat = _feature_side(arch, cfg.stride, size)
    if feat is None: pytest.skip(f'{arch} does not run at {size} px')
    assert config_grids(cfg) == halving_grids(feat)

def test_a_recipe_s_grids_are_its_own():
    for r in RECIPES.values():
        if r.grids is not None: assert config_grids(r) == r.grids

def test_derived_settings_build_no_model():
    body_strides('efficientnet_lite0')                                         # its strides, once per arch (cached)
    st = torch.random.get_rng_state()
    with mock.patch('ssd_nbs.config.SSDModel', side_effect=AssertionError('a model was built')), \
         mock.patch('ssd_nbs.config.make_body', side_effect=AssertionError('a body was built')):
        cfg = RECIPES['data'].resolved()
    assert (cfg.grids, cfg.pretrained) == ((40,20,10,5,3,2,1), True)
    assert torch.equal(st, torch.random.get_rng_state())

def test_the_model_carries_its_config():
    cfg = SSDConfig(size=96)
    model, _ = build_ssd(cfg, 3)
    assert model.cfg == cfg.resolved() == replace(cfg, grids=(12,6,3,2,1), pretrained=False)
    assert model.size == 96
    m = SSDModel(make_body('tiny_resnet', pretrained=False), 3, replace(cfg, nh=8))  # built directly: grids from the body
    assert m.cfg.grids == (12,6,3,2,1) and m.head.stem[1][0].out_channels == 8

@pytest.mark.parametrize('f', [SSDHead.__init__, SSDModel.__init__, fit_run])
def test_no_part_declares_a_default_of_a_config_setting(f):
    own = {k for k,p in inspect.signature(f).parameters.items() if p.default is not p.empty} & FIELDS
    assert not own, f'{f.__qualname__} declares defaults of its own for {own}'

def _few(path, n=24): # `DataLoaders` of `n` shapes images of 64 pixels
    return ssd_dls(tuple(o[:n] for o in voc_items(make_shapes(path/'shapes', n=n, size=64))), size=64, bs=4)

def _state(layers)->dict: return {f'{i}.{k}': v.clone() for i,l in enumerate(layers) for k,v in l.state_dict().items()}

def test_freeze_at_keeps_a_pretrained_body_s_first_layers(tmp_path):
    "EfficientNet-Lite0's stem and first 3 blocks (6 layers) through `fit_run`: a frozen epoch, then an unfrozen one"
    set_seed(42)
    cfg = SSDConfig(arch='efficientnet_lite0', stride=8, grids=(2,1), bs=4, epochs=2, freeze_epochs=1, freeze_at=6,
                    lr=1e-2, body_lr_div=8., head_lr_div=2.)
    learn = ssd_learner(_few(tmp_path), cfg)
    body = list(learn.model.body.children())
    assert frozen_layers(learn.model) == body[:6] and any(isinstance(c, FreezeAt) for c in learn.cbs)
    before, rest = _state(body[:6]), _state(body[6:])
    assert any(k.endswith('running_mean') for k in before)                    # batchnorms among them
    lrs = []
    class LRs(Callback):
        def after_epoch(self): lrs.append([h['lr'] for h in self.opt.hypers])
    with learn.no_bar(), learn.no_logging(): fit_run(learn, cbs=LRs())          # the recipe of `learn.model.cfg`
    assert len(lrs) == 2 and lrs[1][1] / lrs[1][0] == pytest.approx(4.)        # head lr / body lr: (lr/2) / (lr/8)
    after = _state(body[:6])
    assert all(torch.equal(before[k], after[k]) for k in before), [k for k in before if not torch.equal(before[k], after[k])]
    assert any(not torch.equal(v, _state(body[6:])[k]) for k,v in rest.items())   # the rest of the body trained
    assert not any(p.requires_grad for l in body[:6] for p in l.parameters())
    assert all(p.requires_grad for l in body[6:] for p in l.parameters())
    frozen = {id(p) for l in body[:6] for p in l.parameters()}
    assert not frozen & {id(p) for g in ssd_split(learn.model) for p in g}

def test_freeze_at_0_splits_as_body_and_head(tmp_path):
    learn = ssd_learner(_few(tmp_path), SSDConfig(grids=(2,1)))
    m = learn.model
    assert [[id(p) for p in g] for g in ssd_split(m)] == [[id(p) for p in m.body.parameters()], [id(p) for p in m.head.parameters()]]
    assert not any(isinstance(c, FreezeAt) for c in learn.cbs)

def test_freeze_at_is_an_option_of_ssd_train():
    assert train_parser().parse_args(['--freeze-at', '6']).freeze_at == 6

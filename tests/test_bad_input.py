"""Messy data, tried and answered: every case of the README's "Bad input" table is built on disk and run through the
Python API and through `ssd-train` / `ssd-predict`. Each is either handled (and named in one warning) or refused with
one line that names the file and the problem; never a traceback."""
import io, json, os, shutil, sys, warnings
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock
import numpy as np
import pytest
import torch
from PIL import Image
from fastai.vision.all import get_annotations

from ssd_nbs.data import make_shapes, ssd_dls

from ssd_nbs.readers import voc_items, clean_items, VOCWarning, voc_xml
from ssd_nbs.learner import ssd_learner
from ssd_nbs.loss import ssd_targets
from ssd_nbs.learner import MeanAP
from ssd_nbs.report import error_report                                       # patches `SSDLearner.error_report`
from ssd_nbs.files import SSDError
from ssd_nbs.body import tiny_resnet
from ssd_nbs.readers import coco_items
from ssd_nbs.predict import predict_files
from ssd_nbs.cli import train_main, predict_main

# ---- running the commands: their entry points (`train_main`, `predict_main`: what the console scripts run), called in
# this process, as each process that imports fastai costs about 5 CPU seconds (tests/test_cli.py runs the installed
# commands).

def run_all(tmp, cmds):
    "Run the commands `[(name, *args), ...]` in this process, one after the other; their `(exit code, stdout, stderr)`"
    res = []
    for name,*args in cmds:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err), mock.patch.dict(os.environ, SSD_NBS_CACHE=str(tmp/'cache')):
            try: {'ssd-train': train_main, 'ssd-predict': predict_main}[name]([str(a) for a in args]); code = 0
            except SystemExit as e: code = e.code
        res.append((code, out.getvalue(), err.getvalue()))
    return res

def run_main(capsys, monkeypatch, name, *args):
    "`(exit code, stdout, stderr)` of the entry point of command `name`, called in this process"
    monkeypatch.setattr(sys, 'argv', [name, *map(str, args)])
    capsys.readouterr()
    try: {'ssd-train': train_main, 'ssd-predict': predict_main}[name](); code = 0
    except SystemExit as e: code = e.code
    return (code, *capsys.readouterr())

def warned(err, prog):
    "The warnings of a command's stderr, one string each (a warning's message may take several lines)"
    return [w for w in err.split(f'{prog}: warning: ')[1:]]

# 5 anchors (2x2 and 1x1 grids, one box each): so that an image of 6 objects or more has more objects than anchors
TINY = ('--size', 64, '--epochs', 1, '--bs', 4, '--grids', '2,1', '--zooms', 1, '--ratios', '1:1', '--workers', 0)
ANCHORS = dict(grids=(2,1), zooms=(1.,), ratios=((1.,1.),))

# ---- the data sets, built once

@pytest.fixture(scope='module')
def tmp(tmp_path_factory): return tmp_path_factory.mktemp('bad')

@pytest.fixture(scope='module')
def src(tmp): return make_shapes(tmp/'src', n=12, size=64, n_max=3)   # at most 3 objects an image

def _voc(d, anns, src):
    "A VOC folder `d`: `anns` maps a name to its objects [(label, box)], or to raw XML; images copied from `src`, in order"
    for s in ('Annotations', 'JPEGImages'): (d/s).mkdir(parents=True, exist_ok=True)
    for i,(name,objs) in enumerate(anns.items()):
        xml = objs if isinstance(objs, str) else voc_xml(f'{name}.jpg', 64, 64, objs)
        (d/'Annotations'/f'{name}.xml').write_text(xml)
        shutil.copy(src/'JPEGImages'/f'{i%12:06d}.jpg', d/'JPEGImages'/f'{name}.jpg')
    return d

def _ok(src, i): # the objects of image i of `src`, [(label, box)]
    boxes, lbls = voc_items(src)[1][i]
    return list(zip(lbls, boxes))

# What a dirty folder holds, and what must happen to each file (the tables of nbs/library/35_bad_input.ipynb)
KEPT = ['ok0', 'ok1', 'ok2', 'ok3', 'ok4', 'ok5', 'gray', 'rgba', 'flat', 'outside', 'negative', 'crowded', 'empty']
NAMED = {'missing.xml': 'annotations without an image file, skipped',
         'truncated.jpg': 'unreadable images, skipped', 'notimage.jpg': 'unreadable images, skipped',
         'flat.xml': 'degenerate boxes', 'outside.xml': 'boxes partly outside the image, clipped',
         'negative.xml': 'boxes partly outside the image, clipped',
         'gone.xml': 'images whose every box was dropped, skipped (not negatives)'}   # 'empty' (no object): kept, a negative

@pytest.fixture(scope='module')
def dirty(tmp, src):
    "A Pascal VOC folder with one problem per file, and enough clean files to train on"
    box = [8, 8, 40, 40]
    anns = {**{f'ok{i}': _ok(src, i) for i in range(6)},
            'missing': [('circle', box)], 'truncated': [('circle', box)], 'notimage': [('square', box)],
            'gray': _ok(src, 9), 'rgba': _ok(src, 10),
            'flat': [('circle', [30, 10, 30, 50]), ('square', [10, 50, 40, 20]), ('triangle', box)],   # x2==x1, y2<y1
            'outside': [('circle', [40, 40, 90, 70]), ('square', [70, 5, 90, 20]), ('square', box)],  # partly, wholly
            'negative': [('triangle', [-10, -5, 30, 30])],
            'empty': [],                                                   # no object: a negative
            'gone': [('circle', [70, 70, 90, 90])],                        # its one box wholly outside: dropped
            'crowded': [('circle', [x, y, x+10, y+10]) for x in range(2, 60, 12) for y in (2, 30)]}  # 10 objects
    d = _voc(tmp/'dirty', anns, src)
    (d/'JPEGImages'/'missing.jpg').unlink()
    jpg = (d/'JPEGImages'/'truncated.jpg').read_bytes(); (d/'JPEGImages'/'truncated.jpg').write_bytes(jpg[:len(jpg)//2])
    (d/'JPEGImages'/'notimage.jpg').write_text('not an image')
    for n,mode in (('gray', 'L'), ('rgba', 'RGBA')):
        Image.open(d/'JPEGImages'/f'{n}.jpg').convert(mode).save(d/'JPEGImages'/f'{n}.png'); (d/'JPEGImages'/f'{n}.jpg').unlink()
    return d

@pytest.fixture(scope='module')
def dirty_coco(tmp, dirty):
    "The same problems in a COCO json: boxes `x,y,w,h` with w<=0, outside the image, negative; missing, broken images"
    box = [8, 8, 32, 32]
    imgs = {'ok0.jpg': [(1, [5, 5, 30, 30])], 'ok1.jpg': [(2, box)], 'ok2.jpg': [(3, box)], 'ok3.jpg': [(1, box)],
            'ok4.jpg': [(2, box)], 'gray.png': [(1, box)], 'rgba.png': [(3, box)], 'missing.jpg': [(1, box)],
            'truncated.jpg': [(1, box)], 'flat.jpg': [(1, [30, 10, 0, 40]), (2, [10, 50, 30, -30]), (3, box)],
            'outside.jpg': [(1, [40, 40, 50, 30]), (2, [70, 5, 20, 15]), (2, box)], 'negative.jpg': [(3, [-10, -5, 40, 35])],
            'empty.jpg': []}                                                                # no annotation: a negative
    js = dict(categories=[dict(id=1, name='circle'), dict(id=2, name='square'), dict(id=3, name='triangle')],
              images=[dict(id=i, file_name=n) for i,n in enumerate(imgs)],
              annotations=[dict(id=100*i+j, image_id=i, category_id=c, bbox=b)
                           for i,objs in enumerate(imgs.values()) for j,(c,b) in enumerate(objs)])
    f = tmp/'dirty.json'; f.write_text(json.dumps(js))
    return f

def _errors(tmp, src):
    "Data sets that must be refused: name -> (path, format, what the message must say)"
    e = tmp/'err'
    box = [8, 8, 40, 40]
    useless = _voc(e/'useless', {'a': [('circle', [5, 5, 5, 9])], 'b': [('circle', box)], 'c': []}, src)
    (useless/'JPEGImages'/'b.jpg').write_bytes(b'')
    notvoc = e/'notvoc'; notvoc.mkdir(parents=True); shutil.copy(src/'JPEGImages'/'000000.jpg', notvoc)
    badxml = _voc(e/'badxml', {'a': [('circle', box)], 'bad': '<annotation><object><name>circle</name>'}, src)
    nonum = _voc(e/'nonum', {'a': [('circle', box)], 'bad': voc_xml('bad.jpg', 64, 64, [('circle', ['ten', 1, 2, 3])])}, src)
    emptysplit = _voc(e/'emptysplit', {'a': [('circle', box)], 'b': [('square', box)]}, src)
    (emptysplit/'ImageSets'/'Main').mkdir(parents=True)
    (emptysplit/'ImageSets'/'Main'/'train.txt').write_text('a\nb\n'); (emptysplit/'ImageSets'/'Main'/'val.txt').write_text('\n')
    (e/'bad.json').write_text('{"images": [')
    (e/'list.json').write_text('[1, 2, 3]')
    shutil.copytree(src/'JPEGImages', e/'images')
    (e/'nan.json').write_text(json.dumps(dict(categories=[dict(id=1, name='circle')], images=[dict(id=0, file_name='000000.jpg')],
                                              annotations=[dict(id=0, image_id=0, category_id=1, bbox=[1, 2, float('nan'), 4])])))
    return {'no usable image': (useless, 'voc', 'No usable image'),
            'not Pascal VOC': (notvoc, 'voc', 'is it a Pascal VOC folder?'),
            'malformed XML': (badxml, 'voc', 'bad.xml: malformed VOC annotation'),
            'coordinate not a number': (nonum, 'voc', 'bad.xml: malformed VOC annotation'),
            'empty split file': (emptysplit, 'voc', 'val.txt is empty'),
            'malformed json': (e/'bad.json', 'coco', 'bad.json: not a COCO annotation file'),
            'json not COCO': (e/'list.json', 'coco', 'list.json: not a COCO annotation file'),
            'box not numbers': (e/'nan.json', 'coco', '000000.jpg: a box is not 4 finite numbers')}

@pytest.fixture(scope='module')
def errors(tmp, src): return _errors(tmp, src)

@pytest.fixture(scope='module')
def runs(tmp, src, dirty, dirty_coco):
    "The commands that must succeed, run once: VOC and COCO training on dirty data, and a model for --resume"
    shutil.copytree(src, tmp/'vocab')
    cmds = [('ssd-train', '--data', dirty, *TINY, '--out', tmp/'run_voc'),
            ('ssd-train', '--data', dirty_coco, '--format', 'coco', '--images', dirty/'JPEGImages', *TINY, '--out', tmp/'run_coco'),
            ('ssd-train', '--data', tmp/'vocab', *TINY, '--out', tmp/'run_vocab')]
    return dict(zip(('voc', 'coco', 'vocab'), run_all(tmp, cmds)))

# ---- the Python API

def _voc_warning(*args, **kwargs):
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = voc_items(*args, **kwargs)
    ws = [str(w.message) for w in ws if issubclass(w.category, VOCWarning)]
    assert len(ws) == 1, ws
    return res, ws[0]

def test_api_dirty_voc_is_cleaned_named_once_and_trains(dirty):
    (files, targets), msg = _voc_warning(dirty)
    assert sorted(f.stem for f in files) == sorted(KEPT)
    for name,what in NAMED.items(): assert name in msg.split(what)[1].split('\n')[0], (name, what, msg)
    assert f'kept {len(KEPT)} images (1 without objects: negatives)' in msg.splitlines()[0], msg
    t = dict(zip((f.stem for f in files), targets))
    assert t['flat'] == ([[8, 8, 40, 40]], ['triangle'])                              # both degenerate boxes dropped
    assert t['outside'] == ([[40, 40, 64, 64], [8, 8, 40, 40]], ['circle', 'square'])  # clipped; wholly outside dropped
    assert t['negative'] == ([[0, 0, 30, 30]], ['triangle'])
    dls = ssd_dls((files, targets), size=64, bs=4, valid_pct=0.25)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        learn = ssd_learner(dls, arch=tiny_resnet, pretrained=False, nh=32, **ANCHORS)
    crowd = [str(w.message) for w in ws if 'more objects than the 5 anchors' in str(w.message)]
    assert len(crowd) == 1 and 'crowded.jpg' in crowd[0] and 'ok0.jpg' not in crowd[0], crowd
    xb,_,_ = dls.one_batch()
    assert xb.shape == (4, 3, 64, 64)                                                  # gray and RGBA: 3 channels
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(torch.isfinite(torch.tensor(v)).all() for v in learn.recorder.values[-1][:2])

def test_api_dirty_coco_is_cleaned_the_same_way(dirty, dirty_coco):
    names, targets = get_annotations(dirty_coco)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        files, targets = clean_items(([dirty/'JPEGImages'/n for n in names], targets), source=dirty_coco)
    ws = [str(w.message) for w in ws if issubclass(w.category, VOCWarning)]
    assert len(ws) == 1 and f"clean_items('{dirty_coco}')" in ws[0]
    for n in ('missing.jpg', 'truncated.jpg', 'flat.jpg', 'outside.jpg', 'negative.jpg'): assert n in ws[0], n
    assert sorted(f.name for f in files) == ['flat.jpg', 'gray.png', 'negative.jpg', 'ok0.jpg', 'ok1.jpg', 'ok2.jpg',
                                             'ok3.jpg', 'ok4.jpg', 'outside.jpg', 'rgba.png']
    t = dict(zip((f.stem for f in files), targets))
    assert t['flat'] == ([[8, 8, 40, 40]], ['triangle']) and t['negative'] == ([[0, 0, 30, 30]], ['triangle'])
    assert t['outside'] == ([[40, 40, 64, 64], [8, 8, 40, 40]], ['circle', 'square'])
    cf, ct = coco_items(dirty_coco, dirty/'JPEGImages')                              # what ssd-train reads: the same, and
    assert dict(zip(cf, ct)) == {**dict(zip(files, targets)), dirty/'JPEGImages'/'empty.jpg': ([], [])}  # the negative
                                                                                     # (`get_annotations` lists no such image)

def test_api_negatives_train_and_are_scored(tmp):
    "Negatives (drawn by `make_shapes(p_empty=...)`, kept by `voc_items`) train and are scored, whole batches of them"
    files, targets = voc_items(make_shapes(tmp/'negs', n=30, size=64, n_max=3, p_empty=0.4))
    neg = [i for i,(b,_) in enumerate(targets) if not b]
    pos = [i for i,(b,_) in enumerate(targets) if b]
    assert len(neg) >= 6, len(neg)
    pick = lambda ii: ([files[i] for i in ii], [targets[i] for i in ii])
    tr, va = pick(neg[:4] + pos[:-2]), pick(pos[-2:] + neg[4:6])
    dls = ssd_dls(tr, va, size=64, bs=2, aug=False, shuffle=False)
    xb, bb, lb = dls.train.one_batch()
    assert bb.shape == (2, 0, 4) and lb.dtype == torch.long                            # a batch with no box at all
    learn = ssd_learner(dls, arch=tiny_resnet, pretrained=False, nh=32, metrics=MeanAP(), **ANCHORS)
    _, cl, pos_mask = ssd_targets(bb, lb, learn.loss_func.anchors)
    assert not pos_mask.any() and (cl == 0).all()                                       # every anchor background
    loss = learn.loss_func(learn.model(xb), bb, lb)
    assert torch.isfinite(loss) and loss > 0 and learn.loss_func.last['bbox'] == 0, learn.loss_func.last
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    v = learn.recorder.values[-1]                                                       # train loss, valid loss, mAP
    assert all(np.isfinite(v)) and 0 <= v[2] <= 1, v
    rep = learn.error_report(show=False)
    assert rep['images'] == 4 and rep['objects'] == sum(len(b) for b,_ in va[1])

def test_api_label_not_in_the_vocab_of_a_saved_model(src, tmp):
    d = _voc(tmp/'hexagon', {'a': _ok(src, 0), 'b': [('hexagon', [8, 8, 40, 40]), ('circle', [1, 1, 20, 20])]}, src)
    vocab = ['#na#', 'circle', 'square', 'triangle']                                   # a saved model's `dls.vocab`
    (files, targets), msg = _voc_warning(d, vocab=vocab)                               # voc_items: box dropped, named
    assert 'boxes with a label not in vocab, dropped: b.xml (hexagon)' in msg and targets[1] == ([[1, 1, 20, 20]], ['circle'])
    with pytest.raises(ValueError, match=r"label that is not in vocab \['circle', 'square', 'triangle'\]: b.jpg \(hexagon\)"):
        ssd_dls(voc_items(d), size=64, vocab=vocab)                                    # ssd_dls: refused, named

def test_api_refusals_name_the_file(errors):
    for case,(path,fmt,want) in errors.items():
        with pytest.raises(Exception) as e:
            if fmt == 'coco': coco_items(path, path.parent/'images')
            elif case == 'empty split file': voc_items(path, 'val')
            else: voc_items(path)
        msg = str(e.value)
        assert want in msg and '\n' not in msg, (case, msg)
        assert type(e.value).__name__ == 'DataError', (case, repr(e.value))

def test_api_predict_on_gray_rgba_and_broken_images(tmp, dirty, runs):
    model = tmp/'run_voc'/'model.safetensors'
    assert runs['voc'][0] == 0, runs['voc'][2]
    res = predict_files(model, [dirty/'JPEGImages'/'gray.png', dirty/'JPEGImages'/'rgba.png'], tmp/'api_preds', score_thresh=0.0, max_det=5)
    assert [(o['width'], o['height']) for o in res['images']] == [(64, 64), (64, 64)] and res['images'][0]['boxes']
    for bad,want in (('truncated.jpg', 'not a readable image'), ('missing.jpg', 'no such file')):
        with pytest.raises(SSDError, match=f'{bad}: {want}'): predict_files(model, [dirty/'JPEGImages'/bad], tmp/'p2')
    assert not (tmp/'p2').exists()

# ---- the commands

def test_cli_trains_on_dirty_voc_and_names_the_files_in_one_warning(tmp, runs):
    rc, out, err = runs['voc']
    assert rc == 0 and 'Traceback' not in err, err
    data_warn = [w for w in warned(err, 'ssd-train') if w.startswith('voc_items(')]
    assert len(data_warn) == 1, err
    for name in NAMED: assert name in data_warn[0], (name, err)
    assert any('more objects than the 5 anchors' in w and 'crowded.jpg' in w for w in warned(err, 'ssd-train')), err
    m = json.loads((tmp/'run_voc'/'metrics.json').read_text())
    assert m['settings']['n_train'] + m['settings']['n_valid'] == len(KEPT)
    assert all(torch.isfinite(torch.tensor([h['train_loss'], h['valid_loss']])).all() for h in m['history'])

def test_cli_trains_on_dirty_coco(tmp, runs):
    rc, out, err = runs['coco']
    assert rc == 0 and 'Traceback' not in err, err
    w = [w for w in warned(err, 'ssd-train') if w.startswith(('clean_items(', 'coco_items('))]
    assert len(w) == 1 and all(n in w[0] for n in ('missing.jpg', 'truncated.jpg', 'flat.jpg', 'outside.jpg')), err
    m = json.loads((tmp/'run_coco'/'metrics.json').read_text())
    assert m['settings']['n_train'] + m['settings']['n_valid'] == 11                    # empty.jpg: a negative

def test_cli_refusals_are_one_line_naming_the_file(tmp, errors, dirty, runs, capsys, monkeypatch):
    assert runs['vocab'][0] == 0, runs['vocab'][2]
    hexa = tmp/'vocab'/'Annotations'/'000003.xml'                            # the saved model has never seen a hexagon
    hexa.write_text(hexa.read_text().replace('<name>circle</name>', '<name>hexagon</name>').replace(
        '<name>square</name>', '<name>hexagon</name>').replace('<name>triangle</name>', '<name>hexagon</name>'))
    jpgs = dirty/'JPEGImages'
    cases = {c: (('ssd-train', '--data', p, '--format', f, *(('--images', p.parent/'images') if f == 'coco' else ()),
                  *TINY, '--out', tmp/'o'/c.replace(' ', '_')), want) for c,(p,f,want) in errors.items()}
    cases['label not in the saved model'] = (('ssd-train', '--data', tmp/'vocab', *TINY, '--epochs', 2, '--resume',
                                              '--out', tmp/'run_vocab'), '000003.jpg (hexagon)')
    cases['predict: truncated image'] = (('ssd-predict', tmp/'run_voc'/'model.safetensors', jpgs/'truncated.jpg',
                                          '--out', tmp/'o'/'p1'), f'{jpgs/"truncated.jpg"}: not a readable image')
    cases['predict: not an image'] = (('ssd-predict', tmp/'run_voc'/'model.safetensors', jpgs/'notimage.jpg', '--out', tmp/'o'/'p2'),
                                      'notimage.jpg: not a readable image')
    cases['predict: missing image'] = (('ssd-predict', tmp/'run_voc'/'model.safetensors', jpgs/'missing.jpg', '--out', tmp/'o'/'p3'),
                                       'missing.jpg: no such file')
    for case,(cmd,want) in cases.items():
        rc,out,err = run_main(capsys, monkeypatch, *cmd)
        lines = err.strip().splitlines()
        assert rc == 1 and 'Traceback' not in err, (case, err)
        assert len(lines) == 1 and lines[0].startswith(f'{cmd[0]}: error: ') and want in lines[0], (case, err)
    assert not (tmp/'o').exists()                                                      # nothing written
    assert json.loads((tmp/'run_vocab'/'metrics.json').read_text())['epochs'] == 1    # the run was not touched

def test_cli_predict_on_gray_and_rgba(tmp, dirty, runs, capsys, monkeypatch):
    assert runs['voc'][0] == 0, runs['voc'][2]
    rc, out, err = run_main(capsys, monkeypatch, 'ssd-predict', tmp/'run_voc'/'model.safetensors', dirty/'JPEGImages'/'gray.png',
                            dirty/'JPEGImages'/'rgba.png', '--out', tmp/'preds', '--score-thresh', 0.0, '--max-det', 5)
    assert rc == 0 and err.strip() == '', err
    d = json.loads((tmp/'preds'/'detections.json').read_text())
    assert [(o['width'], o['height'], len(o['boxes']) > 0) for o in d['images']] == [(64, 64, True)]*2

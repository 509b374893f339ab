"""The readers of `ssd_nbs.readers` and its one way in, `read_data`: each layout is built on disk from a subset
of BCCD (and from the shapes), read back, and checked against `voc_items` on the original; then the bad-input cases of
the tables of nbs/library/35_bad_input.ipynb are repeated for each layout."""
import json, shutil, tempfile, warnings
from collections import Counter
from pathlib import Path
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image
from fastai.vision.all import get_annotations

torch.set_num_threads(1)
from ssd_nbs.files import DataError, SettingError
from ssd_nbs.data import make_shapes
from ssd_nbs.readers import voc_items, bccd_path, clean_items, VOCWarning, parse_voc_xml, voc_xml, split_names
from ssd_nbs.readers import (csv_items, yolo_items, coco_items, to_voc, to_csv, to_yolo, to_coco,
                             _yolo_line, _yolo_objs, _label_file)
from ssd_nbs.readers import detect_layout, read_data, data_items, describe, random_split, voc_splits

N_BCCD = 24   # images of BCCD copied: the first 22, and the two with a degenerate box
READERS = dict(voc=voc_items, csv=csv_items, yolo=yolo_items, coco=coco_items)

def read(reader, *args, **kwargs):
    "`reader(*args)` and the messages of the `VOCWarning`s it gave"
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        res = reader(*args, **kwargs)
    return res, [str(w.message) for w in ws if issubclass(w.category, VOCWarning)]

def n_boxes(items): return Counter(l for _,ls in items[1] for l in ls)
def by_name(items): return {Path(f).name: t for f,t in zip(*items)}

def same_items(got, want, eps=0.):
    "Same images (by name, any order), same labels, boxes within `eps` pixels"
    g, w = by_name(got), by_name(want)
    assert sorted(g) == sorted(w)
    for k,(b,l) in w.items():
        assert g[k][1] == l, k
        assert np.allclose(np.array(g[k][0]).reshape(-1,4), np.array(b).reshape(-1,4), atol=eps), k

# ---- the data sets, built once

@pytest.fixture(scope='module')
def tmp(tmp_path_factory): return tmp_path_factory.mktemp('sources')

@pytest.fixture(scope='module')
def bccd(tmp):
    "A VOCdevkit-style subset of BCCD, with `ImageSets/Main/trainval.txt` and `test.txt`"
    b, d = bccd_path(), tmp/'bccd'
    names = sorted(o.stem for o in (b/'Annotations').glob('*.xml'))[:N_BCCD-2] + ['BloodImage_00338', 'BloodImage_00343']
    for s in ('Annotations', 'JPEGImages', 'ImageSets/Main'): (d/s).mkdir(parents=True)
    for n in names:
        shutil.copy(b/'Annotations'/f'{n}.xml', d/'Annotations'); shutil.copy(b/'JPEGImages'/f'{n}.jpg', d/'JPEGImages')
    (d/'ImageSets'/'Main'/'trainval.txt').write_text(''.join(f'{n}\n' for n in names[:18]))
    (d/'ImageSets'/'Main'/'test.txt').write_text(''.join(f'{n}\n' for n in names[18:]))
    return d

def raw_items(voc:Path):
    "The items of VOC folder `voc` as its XML files have them: nothing dropped, nothing clipped"
    xs = sorted((voc/'Annotations').glob('*.xml'))
    objs = [parse_voc_xml(x).objs for x in xs]
    return [voc/'JPEGImages'/f'{x.stem}.jpg' for x in xs], [([b for _,b in o], [l for l,_ in o]) for o in objs]

def layouts(raw, d:Path)->dict:
    "Every layout of `raw` (the items as annotated) under `d`: name -> (path, reader, eps of the boxes)"
    to_yolo(raw, d/'yolo')
    return {'labelimg': (to_voc(raw, d/'labelimg'), voc_items, 0), 'beside': (to_voc(raw, d/'beside', 'x', 'x'), voc_items, 0),
            'csv': (to_csv(raw, d/'csv'/'train_labels.csv'), csv_items, 0), 'yolo': (d/'yolo', yolo_items, 1e-5),
            'coco': (to_coco(raw, d/'coco'/'ann.json', cat_ids={'RBC': 2, 'WBC': 7, 'Platelets': 90, 'circle': 3,
                                                                 'square': 11, 'triangle': 40}), coco_items, 0)}

@pytest.fixture(scope='module')
def bccd_layouts(tmp, bccd): return layouts(raw_items(bccd), tmp/'bccd_as')

@pytest.fixture(scope='module')
def shapes(tmp): return make_shapes(tmp/'shapes', n=12, size=64, n_max=3)

@pytest.fixture(scope='module')
def shapes_layouts(tmp, shapes): return layouts(raw_items(shapes), tmp/'shapes_as')

# ---- each layout gives what voc_items gives on the original

@pytest.mark.parametrize('name', ['labelimg', 'beside', 'csv', 'yolo', 'coco'])
def test_bccd_in_each_layout_reads_as_voc_items(bccd, bccd_layouts, name):
    want, w0 = read(voc_items, bccd)
    path, reader, eps = bccd_layouts[name]
    got, ws = read(reader, path)
    assert len(got[0]) == N_BCCD and n_boxes(got) == n_boxes(want)
    same_items(got, want, eps*640)
    assert len(ws) == 1 and 'degenerate boxes' in ws[0] and '2 degenerate' in ws[0], ws   # BCCD's two single points

@pytest.mark.parametrize('name', ['labelimg', 'beside', 'csv', 'yolo', 'coco'])
def test_shapes_in_each_layout_read_as_voc_items(shapes, shapes_layouts, name):
    path, reader, eps = shapes_layouts[name]
    got, ws = read(reader, path)
    same_items(got, voc_items(shapes), eps*64)
    assert ws == []

def test_voc_items_on_a_vocdevkit_follows_its_split_files(bccd, tmp):
    (files, targets), ws = read(voc_items, bccd, 'test')
    assert [f.stem for f in files] == split_names(bccd, 'test') and all(f.parent == bccd/'JPEGImages' for f in files)
    assert len(read(voc_items, bccd)[0][0]) == N_BCCD and len(ws) == 1 and 'degenerate boxes' in ws[0]
    kit = tmp/'VOCdevkit'; kit.mkdir(); shutil.copytree(bccd, kit/'VOC2007')                  # the devkit's folder
    assert [f.name for f in read(voc_items, kit, 'test')[0][0]] == [f.name for f in read(voc_items, bccd, 'test')[0][0]]

# ---- the one way in

def test_detect_layout(bccd, bccd_layouts, tmp):
    want = dict(labelimg='voc', beside='voc', csv='csv', yolo='yolo', coco='coco')
    for k,(p,*_) in bccd_layouts.items():
        assert detect_layout(p) == want[k], k
        assert detect_layout(p if p.is_dir() else p.parent) == want[k], k
    assert detect_layout(bccd) == 'voc' and detect_layout(None) == 'shapes'
    assert detect_layout(bccd_layouts['yolo'][0]/'data.yaml') == 'yolo'
    (tmp/'pics').mkdir(); shutil.copy(bccd/'JPEGImages'/'BloodImage_00000.jpg', tmp/'pics')
    for p,msg in ((tmp/'pics', 'Looked for a data.yaml, or images/ and labels/ (YOLO); Annotations/ or .xml files'),
                  (tmp/'nowhere', 'no such file or folder'), (tmp/'pics'/'BloodImage_00000.jpg', 'not a .json (COCO)')):
        with pytest.raises(SettingError, match=msg.replace('(', r'\(').replace(')', r'\)')): detect_layout(p)

def test_data_items_uses_the_split_of_each_layout(bccd, tmp):
    raw, d = raw_items(bccd), tmp/'split'
    tv, te = (read(voc_items, bccd, s)[0] for s in ('trainval', 'test'))
    half = lambda items, names: ([f for f in items[0] if f.stem in names], [t for f,t in zip(*items) if f.stem in names])
    trn, tst = ({f.stem for f in o[0]} for o in (tv, te))
    to_csv(half(raw, trn), d/'csv'/'train.csv'); to_csv(half(raw, tst), d/'csv'/'test.csv')
    to_coco(half(raw, trn), d/'coco'/'annotations'/'instances_train.json', d/'coco'/'train')
    to_coco(half(raw, tst), d/'coco'/'annotations'/'instances_val.json', d/'coco'/'val')
    to_yolo(half(raw, trn), d/'yolo', 'train'); to_yolo(half(raw, tst), d/'yolo', 'val')
    for p,layout,split in ((bccd, 'voc', 'ImageSets/Main/trainval.txt and test.txt'), (d/'csv', 'csv', 'train.csv and test.csv'),
                           (d/'coco', 'coco', 'annotations/instances_train.json and annotations/instances_val.json'),
                           (d/'yolo', 'yolo', 'data.yaml: train images/train, val images/val')):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', VOCWarning)
            ds = read_data(p)
        assert (ds.layout, ds.split) == (layout, split)
        eps = 0.01 if layout == 'yolo' else 0                                           # 6 decimals of 640 pixels
        same_items(ds.train, tv, eps); same_items(ds.valid, te, eps)
        r = describe(ds, show=False)
        assert r['train']['images'] == len(tv[0]) and r['valid']['boxes'] == dict(sorted(n_boxes(te).items()))

def test_data_items_random_split_and_describe(bccd_layouts, capsys):
    for k,(p,*_) in bccd_layouts.items():
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', VOCWarning)
            ds = read_data(p, valid_pct=0.25, seed=1)
            tr, va = data_items(p, valid_pct=0.25, seed=1)
        assert (len(tr[0]), len(va[0])) == (18, 6) and ds.split.startswith('random 25% (seed 1)'), (k, ds.split)
        assert sorted(f.name for f in tr[0]) == sorted(f.name for f in ds.train[0])
    describe(ds); out = capsys.readouterr().out
    assert out.startswith(f'coco data at {p}; split: random 25% (seed 1)') and 'train: 18 images' in out
    with pytest.raises(SettingError, match="format 'xml'"): read_data(p, 'xml')
    with pytest.raises(DataError, match='is it a Pascal VOC folder'): read_data(p.parent.parent/'yolo'/'images', 'voc')

def test_shapes_is_the_default(tmp, monkeypatch):
    monkeypatch.setenv('SSD_NBS_CACHE', str(tmp/'cache'))
    import ssd_nbs.readers as L
    monkeypatch.setattr(L, 'shapes_data', lambda seed: make_shapes(tmp/'cache'/'s', n=10, size=32, valid_pct=0.2))
    ds = read_data()
    assert ds.layout == 'shapes' and (len(ds.train[0]), len(ds.valid[0])) == (8, 2) and 'val.txt' in ds.split

# ---- formats written by hand: what the writers are checked against

def test_yolo_by_hand(tmp, shapes):
    d = tmp/'yolo_hand'
    for s in ('train/images', 'train/labels', 'valid/images', 'valid/labels'): (d/s).mkdir(parents=True)
    for s in ('train', 'valid'): shutil.copy(shapes/'JPEGImages'/'000000.jpg', d/s/'images'/'a.jpg')
    shutil.copy(shapes/'JPEGImages'/'000001.jpg', d/'train'/'images'/'nolabel.jpg')
    (d/'train'/'labels'/'a.txt').write_text('0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.2 0.2 0.2 0.3\n')  # a box, a polygon
    (d/'valid'/'labels'/'a.txt').write_text('1 0.5 0.5 1 1\n')
    (d/'data.yaml').write_text('train: ../train/images\nval: ../valid/images\nnc: 2\nnames: {0: cat, 1: dog}\n')  # Roboflow's
    (tr, va), ws = read(data_items, d)
    assert tr[0] == [d/'train'/'images'/'a.jpg', d/'train'/'images'/'nolabel.jpg'] and tr[1][0][1] == ['cat', 'dog']
    assert np.allclose(tr[1][0][0], [[24, 16, 40, 48], [6.4, 6.4, 12.8, 19.2]])
    assert tr[1][1] == ([], []) and ws == []                                # no label file: a negative (Ultralytics' rule)
    assert va[1] == [([[0, 0, 64, 64]], ['dog'])]
    assert _label_file(Path('data/images/train/images/x.png')) == Path('data/images/train/labels/x.txt')
    assert _label_file(Path('images/x.png')) == Path('labels/x.txt') and _label_file(Path('a/x.png')) == Path('a/x.txt')

def test_csv_by_hand(tmp, shapes):
    d = tmp/'csv_hand'; (d/'imgs').mkdir(parents=True)
    for i in (0, 1, 2): shutil.copy(shapes/'JPEGImages'/f'00000{i}.jpg', d/'imgs'/f'{i}.jpg')
    (d/'b.csv').write_text('Label,X1,Y1,X2,Y2,Image\ncat,1,2,30,40,0.jpg\n"dog",5,5,20,20,0.jpg\n,,,,,1.jpg\n'
                           'cat,0,0,10,10,2.jpg\n')
    (f, t), ws = read(csv_items, d/'b.csv', d/'imgs')
    assert [o.name for o in f] == ['0.jpg', '1.jpg', '2.jpg'] and t[0] == ([[1, 2, 30, 40], [5, 5, 20, 20]], ['cat', 'dog'])
    assert t[1] == ([], []) and ws == []                                     # a row with no box: a negative

def test_coco_gaps_crowd_and_get_annotations(tmp, shapes):
    items = voc_items(shapes)
    js = to_coco(items, tmp/'coco_hand'/'a.json', cat_ids={'circle': 5, 'square': 12, 'triangle': 91})
    names, targets = get_annotations(js)                                                   # the oracle, without crowds
    assert coco_items(js) == clean_items(([js.parent/'images'/n for n in names], targets))
    d = json.loads(js.read_text())
    d['annotations'] += [dict(id=1000, image_id=0, category_id=5, bbox=[0, 0, 20, 20], iscrowd=1),
                         dict(id=1001, image_id=1, category_id=4, bbox=[0, 0, 20, 20])]   # 4: not a category
    js.write_text(json.dumps(d))
    (f, t, c), ws = read(coco_items, js, crowd=True)
    assert t == items[1] and c[0] == ([[0, 0, 20, 20]], ['circle']) and c[1:] == [([], [])]*11
    assert len(ws) == 1 and 'boxes of a category id not in categories, dropped: 000001.jpg (4)' in ws[0]

def test_voc_image_found_by_filename_folder_path_and_stem(tmp, shapes):
    d = tmp/'hints'
    for s in ('xml', 'a', 'b'): (d/s).mkdir(parents=True)
    for s in ('a', 'b'): shutil.copy(shapes/'JPEGImages'/'000000.jpg', d/s/'im.jpg')
    shutil.copy(shapes/'JPEGImages'/'000001.jpg', d/'b'/'stem.png')
    shutil.copy(shapes/'JPEGImages'/'000002.jpg', d/'b'/'other.jpg')
    shutil.copy(shapes/'JPEGImages'/'000003.jpg', d/'b'/'stray.jpg')
    box = [('circle', [1, 1, 20, 20])]
    (d/'xml'/'one.xml').write_text(voc_xml('im.jpg', 64, 64, box).replace('JPEGImages', 'b'))           # <folder> b
    (d/'xml'/'two.xml').write_text(voc_xml('gone.jpg', 64, 64, box).replace('</annotation>',
                                   r'<path>C:\Users\me\b\other.jpg</path></annotation>'))            # <path>'s name
    (d/'xml'/'stem.xml').write_text(voc_xml('gone.jpg', 64, 64, box))                                # the stem
    (f, t), ws = read(voc_items, d)
    assert [o.relative_to(d).as_posix() for o in f] == ['b/im.jpg', 'b/stem.png', 'b/other.jpg']
    assert len(ws) == 1 and 'images that no annotation names, not used: stray.jpg\n' in ws[0] + '\n', ws

RT = Path(tempfile.mkdtemp())  # for the label file of the round trip

@settings(max_examples=50, deadline=None)
@given(st.integers(8, 800), st.integers(8, 800), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_yolo_line_round_trip(w, h, a, b, c, e):
    box = [min(a, b)*w, min(c, e)*h, max(a, b)*w, max(c, e)*h]
    lf = RT/'a.txt'; lf.write_text(_yolo_line(0, box, w, h))
    (_, got), = _yolo_objs(lf, ['x'], (w, h), {})
    assert np.allclose(got, box, atol=2e-5*max(w, h))                    # 6 decimals, and the edges snapped

# ---- bad input, in every layout: 35_bad_input's tables

BOX = [8, 8, 40, 40]
DIRTY = {'ok0': None, 'ok1': None, 'ok2': None, 'ok3': None,           # None: the objects of that shapes image
         'missing': [('circle', BOX)],
         'flat': [('circle', [30, 10, 30, 50]), ('square', [10, 50, 40, 20]), ('triangle', BOX)],      # x2==x1, y2<y1
         'outside': [('circle', [40, 40, 90, 70]), ('square', [70, 5, 90, 20]), ('square', BOX)],    # partly, wholly
         'negative': [('triangle', [-10, -5, 30, 30])],
         'hexagon': [('hexagon', BOX), ('circle', [1, 1, 20, 20])],
         'nothing': [],                                                  # no object: a negative, kept
         'gone': [('circle', [70, 70, 90, 90])]}                         # every box dropped: skipped, not a negative
VOCAB = ['circle', 'square', 'triangle']

def dirty_items(shapes, d:Path):
    "Images (copied from the shapes) and their objects as annotated, dirty"
    (d/'src').mkdir(parents=True)
    files, targets = [], []
    for i,(n,objs) in enumerate(DIRTY.items()):
        shutil.copy(shapes/'JPEGImages'/f'{i:06d}.jpg', d/'src'/f'{n}.jpg')
        if objs is None: objs = list(zip(*reversed(voc_items(shapes)[1][i])))
        files.append(d/'src'/f'{n}.jpg'); targets.append(([b for _,b in objs], [l for l,_ in objs]))
    return files, targets

def write(layout, items, d:Path)->Path:
    "`items` in `layout` under `d`; then the image of 'missing' removed"
    p = dict(voc=lambda: to_voc(items, d), csv=lambda: to_csv(items, d/'b.csv'), coco=lambda: to_coco(items, d/'b.json'),
             yolo=lambda: to_yolo(items, d, names=VOCAB+['hexagon']))[layout]()
    im = {'voc': d/'images', 'csv': d/'images', 'coco': d/'images', 'yolo': d/'images'/'train'}[layout]
    (im/'missing.jpg').unlink()
    return p

@pytest.fixture(scope='module')
def dirty(tmp, shapes):
    items = dirty_items(shapes, tmp/'dirty')
    return {k: write(k, items, tmp/'dirty'/k) for k in READERS}

NAMED = ('missing', 'flat', 'outside', 'negative', 'hexagon')

@pytest.mark.parametrize('layout', list(READERS))
def test_dirty_data_in_each_layout_is_cleaned_and_named_once(dirty, layout):
    (files, targets), ws = read(READERS[layout], dirty[layout], vocab=VOCAB)
    eps = 1e-3 if layout == 'yolo' else 0
    assert sorted(f.stem for f in files) == sorted(k for k in DIRTY if k not in ('missing', 'gone'))
    assert len(ws) == 1 and 'images (1 without objects: negatives)' in ws[0].splitlines()[0], ws
    for k,what in (('missing', 'missing'), ('flat', 'degenerate boxes'), ('outside', 'degenerate boxes'),
                   ('outside', 'partly outside the image, clipped'), ('negative', 'partly outside'),
                   ('hexagon', 'label not in vocab, dropped'), ('gone', 'every box was dropped, skipped (not negatives)')):
        line = next((l for l in ws[0].splitlines() if what in l), '')
        assert k in line, (layout, k, what, ws[0])
    t = dict(zip((f.stem for f in files), targets))
    for k,want in (('flat', ([BOX], ['triangle'])), ('outside', ([[40, 40, 64, 64], BOX], ['circle', 'square'])),
                   ('negative', ([[0, 0, 30, 30]], ['triangle'])), ('hexagon', ([[1, 1, 20, 20]], ['circle'])),
                   ('nothing', ([], []))):
        assert t[k][1] == want[1] and np.allclose(t[k][0], want[0], atol=eps*64), (layout, k, t[k])
    tr, va = random_split((files, targets))
    assert len(tr[0]) + len(va[0]) == len(DIRTY) - 2

def test_class_index_not_in_names(dirty, tmp):
    y = shutil.copytree(dirty['yolo'].parent, tmp/'yolo7')/'data.yaml'
    (_, targets), _ = read(yolo_items, y, vocab=VOCAB)
    lf = y.parent/'labels'/'train'/'ok0.txt'; lf.write_text(lf.read_text() + '7 0.5 0.5 0.1 0.1\n')   # 4 names
    (_, t2), ws = read(yolo_items, y, vocab=VOCAB)
    assert 'boxes with a class index not in names, dropped: ok0.txt (7)' in ws[0] and t2 == targets

def _errors(tmp, shapes):
    "Data sets that must be refused: name -> (reader, path, what the one-line message must say)"
    e, box = tmp/'err', [('circle', BOX)]
    ok = (lambda: ([shapes/'JPEGImages'/'000000.jpg'], [([BOX], ['circle'])]))
    cases = {}
    v = to_voc(ok(), e/'voc'); (v/'annotations'/'bad.xml').write_text('<annotation><object><name>circle</name>')
    cases['voc: malformed XML'] = (voc_items, v, 'bad.xml: malformed VOC annotation')
    v = to_voc(ok(), e/'vocnum'); (v/'annotations'/'n.xml').write_text(voc_xml('000000.jpg', 64, 64, [('circle', ['ten', 1, 2, 3])]))
    cases['voc: coordinate not a number'] = (voc_items, v, 'n.xml: malformed VOC annotation')
    c = to_csv(ok(), e/'csv'/'a.csv'); c.write_text(c.read_text() + '000000.jpg,64,64,circle,ten,1,2,3\n')
    cases['csv: coordinate not a number'] = (csv_items, c, "a.csv: row 3: xmin 'ten' is not a number")
    c = e/'csv'/'cols.csv'; c.write_text('filename,class,x,y,w,h\n000000.jpg,circle,1,2,3,4\n')
    cases['csv: columns missing'] = (csv_items, c, 'cols.csv: row 1: no xmin/ymin/xmax/ymax column')
    c = e/'csv'/'short.csv'; c.write_text('filename,class,xmin,ymin,xmax,ymax\n000000.jpg,circle,1,2\n')
    cases['csv: short row'] = (csv_items, c, 'short.csv: row 2: 4 fields, the header has 6')
    y = to_yolo(ok(), e/'yolo'); (e/'yolo'/'labels'/'train'/'000000.txt').write_text('0 0.5 0.5 0.1\n')
    cases['yolo: short line'] = (yolo_items, y, "000000.txt: line 1: '0 0.5 0.5 0.1' is not `class cx cy w h`")
    y = to_yolo(ok(), e/'yolonan'); (e/'yolonan'/'labels'/'train'/'000000.txt').write_text('0 0.5 nan 0.1 0.1\n')
    cases['yolo: not a number'] = (yolo_items, y, "000000.txt: line 1: '0 0.5 nan 0.1 0.1'")
    y = to_yolo(ok(), e/'yoloyaml'); y.write_text('train: [images/train\n')
    cases['yolo: malformed yaml'] = (yolo_items, y, 'data.yaml: not a readable YAML file')
    y = to_yolo(ok(), e/'yolosplit'); y.write_text('train: images/nowhere\nnames: [circle]\n')
    cases['yolo: split folder missing'] = (yolo_items, y, "data.yaml: split 'images/nowhere': no such folder or file")
    j = to_coco(ok(), e/'coco'/'a.json'); d = json.loads(j.read_text()); d['annotations'][0]['bbox'][2] = float('nan')
    j.write_text(json.dumps(d))
    cases['coco: box not numbers'] = (coco_items, j, 'annotation 0 of 000000.jpg: a box is not 4 finite numbers')
    (e/'coco'/'bad.json').write_text('{"images": [')
    cases['coco: malformed json'] = (coco_items, e/'coco'/'bad.json', 'bad.json: not a COCO annotation file')
    (e/'coco'/'list.json').write_text('[1, 2]')
    cases['coco: json not COCO'] = (coco_items, e/'coco'/'list.json', 'list.json: not a COCO annotation file')
    useless = (lambda: ([shapes/'JPEGImages'/'000000.jpg'], [([[5, 5, 5, 9]], ['circle'])]))
    for k,w in (('voc', lambda d: to_voc(useless(), d)), ('csv', lambda d: to_csv(useless(), d/'u.csv')),
                ('yolo', lambda d: to_yolo(useless(), d)), ('coco', lambda d: to_coco(useless(), d/'u.json'))):
        cases[f'{k}: no usable image'] = (READERS[k], w(e/f'useless_{k}'), 'No usable image in')
    nothing = (lambda: ([shapes/'JPEGImages'/f'00000{i}.jpg' for i in (0, 1)], [([], [])]*2))  # negatives only
    for k,w in (('voc', lambda d: to_voc(nothing(), d)), ('csv', lambda d: to_csv(nothing(), d/'n.csv')),
                ('yolo', lambda d: to_yolo(nothing(), d, names=['circle']))):
        cases[f'{k}: negatives only'] = (READERS[k], w(e/f'nothing_{k}'), '(2 images, all without objects)')
    cases['coco: negatives only'] = (coco_items, to_coco(nothing(), e/'nothing_coco'/'n.json'), 'n.json: no annotated image')
    return cases

def test_refusals_in_each_layout_are_one_line_naming_the_file(tmp, shapes):
    for case,(reader,path,want) in _errors(tmp, shapes).items():
        with pytest.raises(DataError) as e: reader(path)
        msg = str(e.value)
        assert want in msg and '\n' not in msg, (case, msg)
        with pytest.raises(DataError) as e2: data_items(path)                     # the same through the one way in
        assert want in str(e2.value), (case, str(e2.value))

# ---- images without objects: negatives, in every layout

@pytest.fixture(scope='module')
def negative_layouts(tmp, shapes):
    "The shapes with images 2, 5 and 9 annotated with no object, in every layout; the YOLO one without their label files"
    f, t = raw_items(shapes)
    d = layouts((f, [([], []) if i in (2, 5, 9) else o for i,o in enumerate(t)]), tmp/'neg_as')
    for i in (5, 9): (d['yolo'][0]/'labels'/'train'/f'{f[i].stem}.txt').unlink()       # no label file: a negative too
    return d

@pytest.mark.parametrize('name', ['labelimg', 'beside', 'csv', 'yolo', 'coco'])
def test_negatives_in_each_layout_are_kept_and_counted(shapes, negative_layouts, name, capsys):
    path, reader, eps = negative_layouts[name]
    got, ws = read(reader, path)
    want = voc_items(shapes)
    want = (want[0], [([], []) if i in (2, 5, 9) else o for i,o in enumerate(want[1])])
    same_items(got, want, eps*64)
    assert ws == []                                                            # a negative is no problem
    with warnings.catch_warnings(): warnings.simplefilter('ignore', VOCWarning); r = describe(read_data(path))
    assert r['train']['negatives'] + r['valid']['negatives'] == 3
    assert r['train']['images'] + r['valid']['images'] == 12
    assert 'images without objects (negatives)' in capsys.readouterr().out

def test_ssd_data_counts_negatives(tmp, negative_layouts):
    "`ssd-data`'s data.json has the negatives of each side"
    from ssd_nbs.check import check_data
    res = check_data(negative_layouts['yolo'][0], out=tmp/'neg_data')
    d = json.loads((tmp/'neg_data'/'data.json').read_text())
    assert d['train']['negatives'] + d['valid']['negatives'] == 3 and d['train'] == res['train']

# ---- anchor coverage and fitted anchors (ssd_nbs.fit)

def test_anchor_coverage_is_04s_measurement_and_the_fit_never_loses(shapes):
    from ssd_nbs.core import box_iou
    from ssd_nbs.anchors import make_anchors
    from ssd_nbs.fit import norm_boxes, anchor_coverage, fit_anchors
    bb, lbl = norm_boxes(voc_items(shapes))
    zooms, ratios = (0.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.))
    for grids in ((4, 2, 1), (8,)):
        c = anchor_coverage(bb, lbl, grids, zooms, ratios, 0.5)
        direct = (box_iou(bb, make_anchors(grids, zooms, ratios)).max(1).values >= 0.5).float()
        assert abs(c['all'] - direct.mean().item()) < 1e-6 and max(c['per_grid'].values()) <= c['all']
        for k,v in c['per_class'].items(): assert abs(v - direct[[l == k for l in lbl]].mean().item()) < 1e-6
        z, r = fit_anchors(bb, grids, zooms, ratios, 0.5)
        assert len(z) == 3 and len(r) == 3 and anchor_coverage(bb, lbl, grids, z, r, 0.5)['all'] >= c['all']

def test_roboflow_coco_and_tf_csv_pairs(shapes, tmp):
    items = voc_items(shapes)
    tr, va = (items[0][:9], items[1][:9]), (items[0][9:], items[1][9:])
    d = tmp/'roboflow'                                                 # train/_annotations.coco.json, images beside
    to_coco(tr, d/'train'/'_annotations.coco.json', d/'train'); to_coco(va, d/'valid'/'_annotations.coco.json', d/'valid')
    t = tmp/'tfod'                                                     # train_labels.csv, images/train/
    to_csv(tr, t/'train_labels.csv', t/'images'/'train'); to_csv(va, t/'test_labels.csv', t/'images'/'test')
    for p,split in ((d, 'train/_annotations.coco.json and valid/_annotations.coco.json'),
                    (t, 'train_labels.csv and test_labels.csv')):
        ds = read_data(p)
        assert ds.split == split and (ds.train, ds.valid) == (read(READERS[ds.layout], ds.path/split.split(' and ')[0])[0],
                                                              read(READERS[ds.layout], ds.path/split.split(' and ')[1])[0])
        same_items(ds.train, tr); same_items(ds.valid, va)

def test_ssd_train_one_short_epoch_on_each_layout(tmp, shapes_layouts, shapes, capsys, monkeypatch):
    """`ssd-train --data PATH` with no --format: each layout is recognised, trains an epoch and writes its model (the
    command's entry point, in this process: tests/test_cli.py runs the installed command)"""
    from ssd_nbs.cli import train_main
    monkeypatch.setenv('SSD_NBS_CACHE', str(tmp/'cache'))
    n_img = len(voc_items(shapes)[0])
    for k,(p,_,_) in shapes_layouts.items():
        capsys.readouterr()
        try: train_main(['--data', str(p), '--size', '64', '--epochs', '1', '--bs', '4', '--grids', '4,2,1', '--out', str(tmp/f'run_{k}')])
        except SystemExit as e: pytest.fail(f'{k}: exit {e.code}: {capsys.readouterr().err[-2000:]}')
        out = capsys.readouterr().out
        m = json.loads((tmp/f'run_{k}'/'metrics.json').read_text())
        s = m['settings']
        layout = {'labelimg': 'voc', 'beside': 'voc'}.get(k, k)
        assert s['layout'] == layout and s['n_train'] + s['n_valid'] == n_img, (k, s)
        assert f'{layout} data at' in out and 'grids 4,2,1' in out, (k, out[-1000:])
        assert (tmp/f'run_{k}'/'model.safetensors').is_file()
        assert (s['arch'], s['pretrained']) == ('efficientnet_lite0', True), (k, s)    # --data: the body that sees

def test_data_report_without_fitting(shapes):
    "`ssd-data` without --fit-anchors: the report and its picture, with no fitted anchors in either"
    from ssd_nbs.fit import data_report
    items = voc_items(shapes)
    rep, fig = data_report(items, items, (4, 2, 1), (0.7, 1., 1.3), ((1., 1.), (1., .5), (.5, 1.)), 0.5, fit=False)
    assert 'fitted' not in rep and 0 <= rep['coverage']['all'] <= 1 and len(fig.axes) == 1

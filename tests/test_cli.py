"""The console commands `ssd-train`, `ssd-data` and `ssd-predict` on a dozen tiny images. Each runs for real in a
subprocess at least once (as installed); the other runs call the commands' entry points (`train_main`, ...: what the
console scripts run) in this process, as each process that imports torch and fastai costs about 5 CPU seconds."""
import io, json, os, shutil, signal, subprocess, sys, time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock
import pytest
import torch

from safetensors.torch import load_file
from ssd_nbs.data import make_shapes
from ssd_nbs.readers import voc_items
from ssd_nbs.detector import load_detector
from ssd_nbs.train import Checkpoint
from ssd_nbs.cli import train_main, data_main, predict_main

def _cmd(name):
    "The installed console script `name` (next to this Python, else on PATH)"
    p = Path(sys.executable).parent/name
    exe = str(p) if p.exists() else shutil.which(name)
    if exe is None: pytest.fail(f'{name} is not installed: run `pip install -e .`')
    return exe

def _env(tmp):
    return {**os.environ, 'MPLBACKEND': 'Agg', 'SSD_NBS_CACHE': str(tmp/'cache')}

def run(tmp, name, *args):
    return subprocess.run([_cmd(name), *map(str, args)], capture_output=True, text=True, env=_env(tmp), timeout=300)

MAINS = {'ssd-train': train_main, 'ssd-data': data_main, 'ssd-predict': predict_main}

def main(tmp, name, *args):
    "`(exit code, stdout, stderr)` of command `name` run in this process, with the environment of `run`"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), mock.patch.dict(os.environ, _env(tmp)):
        try: MAINS[name]([str(a) for a in args]); code = 0
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()

def main_all(tmp, cmds): return [main(tmp, *c) for c in cmds]

TINY = ('--size', 64, '--epochs', 1, '--bs', 4, '--grids', '4,2,1')

@pytest.fixture(scope='module')
def tmp(tmp_path_factory): return tmp_path_factory.mktemp('cli')

@pytest.fixture(scope='module')
def voc(tmp): return make_shapes(tmp/'voc', n=12, size=64)

@pytest.fixture(scope='module')
def run_dir(tmp, voc):
    "A tiny training run of `ssd-train` on the VOC folder"
    out = tmp/'run'
    r = run(tmp, 'ssd-train', '--data', voc, *TINY, '--out', out)
    assert r.returncode == 0, r.stderr
    return out, r

def test_train_writes_model_metrics_and_picture(run_dir, voc):
    out,r = run_dir
    assert sorted(o.name for o in out.iterdir()) == ['checkpoint.pth', 'errors.json', 'errors.png', 'metrics.json', 'model.safetensors', 'predictions.png']
    assert 'mAP' in r.stdout and 'train_loss' in r.stdout                                             # the progress table
    m = json.loads((out/'metrics.json').read_text())
    assert 0 <= m['mAP'] <= 1 and set(m['per_class']) <= {'circle', 'square', 'triangle'}
    assert all(0 <= v <= 1 for v in m['per_class'].values())
    assert m['epochs'] == 1 and len(m['history']) == 1 and m['train_loss'] > 0 and m['valid_loss'] > 0 and m['seconds'] > 0
    s = m['settings']
    assert (s['data'], s['format'], s['layout'], s['size'], s['bs'], s['grids'], s['arch']) == (str(voc), 'auto', 'voc', 64, 4, [4,2,1], 'efficientnet_lite0')   # --data: the DATA recipe
    assert (s['n_train'], s['n_valid']) == (10, 2)                                       # make_shapes' train/val splits
    assert s['pretrained'] is True and s['stride'] == 8                                 # --grids given: not derived
    d = m['derived']                                                      # no --recipe: the anchors fitted to the boxes
    assert set(d) == {'zooms', 'ratios'} and s['zooms'] == d['zooms']['value'] and s['ratios'] == d['ratios']['value']
    assert 'the recipe, derived from' in r.stdout and f"--zooms {','.join(map(str, s['zooms']))}: fitted" in r.stdout
    lines = [l for l in r.stdout.splitlines() if l.startswith('epoch ')]                # not a terminal: a line an epoch
    assert len(lines) == 1 and lines[0].startswith('epoch 1/1 train_loss ') and 'mAP' in lines[0] and '█' not in r.stdout
    det = load_detector(out/'model.safetensors')                                   # a safetensors file: no code is run
    assert det.vocab[1:] == s['classes'] and det.cfg.size == 64 and det.cfg.grids == (4,2,1)

def test_train_on_coco_json(tmp, voc):
    files,targets = voc_items(voc)
    cats = sorted({l for _,ls in targets for l in ls})
    anns = [dict(id=100*j+k, image_id=j, category_id=cats.index(l)+1, bbox=[b[0],b[1],b[2]-b[0],b[3]-b[1]])
            for j,(bs,ls) in enumerate(targets) for k,(b,l) in enumerate(zip(bs,ls))]
    js = tmp/'coco'/'train.json'; (tmp/'coco').mkdir()
    shutil.copytree(voc/'JPEGImages', tmp/'coco'/'images')                              # images/ next to the json
    js.write_text(json.dumps(dict(images=[dict(id=j, file_name=f.name) for j,f in enumerate(files)], annotations=anns,
                                  categories=[dict(id=i+1, name=c) for i,c in enumerate(cats)])))
    rc, out, err = main(tmp, 'ssd-train', '--data', js, '--format', 'coco', *TINY, '--ratios', '1:1', '--zooms', '1', '--out', tmp/'crun')
    assert rc == 0, err
    m = json.loads((tmp/'crun'/'metrics.json').read_text())
    assert (m['settings']['n_train'], m['settings']['n_valid']) == (10, 2) and m['settings']['format'] == 'coco'
    assert m['settings']['ratios'] == [[1,1]]

@pytest.fixture(scope='module')
def recipe_runs(tmp, voc):
    """`ssd-data` in a subprocess while, in this process, --stride 16 with --no-fit-anchors and a --time 30s budget run"""
    data = subprocess.Popen([_cmd('ssd-data'), '--data', str(voc), '--size', '64', '--out', str(tmp/'dd')],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp))
    s16 = main(tmp, 'ssd-train', '--data', voc, '--size', 64, '--epochs', 2, '--bs', 4, '--stride', 16, '--no-fit-anchors',
               '--out', tmp/'s16')
    t = main(tmp, 'ssd-train', '--data', voc, '--size', 64, '--bs', 4, '--grids', '4,2,1', '--time', '30s', '--out', tmp/'t30')
    return dict(s16=s16, time=t, data=(data.wait(timeout=300), *data.communicate()))

def test_stride_16_and_no_fit_anchors_with_one_log_line_an_epoch(tmp, recipe_runs):
    rc, out, err = recipe_runs['s16']
    assert rc == 0, err
    m = _metrics(tmp/'s16'); s = m['settings']
    assert (s['stride'], s['size'], s['zooms'], s['ratios']) == (16, 64, [.7,1,1.3], [[1,1],[1,.5],[.5,1]])
    assert set(m['derived']) == {'grids'} and s['grids'] == m['derived']['grids']['value'] and s['grids'][0] <= 4   # 64/16
    lines = [l for l in out.splitlines() if l.startswith('epoch ')]
    assert [l.split()[1] for l in lines] == ['1/2', '2/2'] and all('valid_loss' in l and 'mAP' in l for l in lines), out
    assert '█' not in out and '\r' not in out

def test_time_budget_chooses_and_records_the_epochs(tmp, recipe_runs):
    rc, out, err = recipe_runs['time']
    assert rc == 0, err
    m = _metrics(tmp/'t30')
    assert m['settings']['time'] == 30 and m['epochs'] == m['settings']['epochs'] == m['derived']['epochs']['value'] >= 1
    assert 'a time budget of 30s' in m['derived']['epochs']['reason'] and f"epochs {m['epochs']}: a time budget" in out
    assert (tmp/'t30'/'model.safetensors').is_file() and len(m['history']) == m['epochs']

def test_ssd_data_prints_the_derived_recipe(tmp, recipe_runs):
    rc, out, err = recipe_runs['data']
    assert rc == 0, err
    d = json.loads((tmp/'dd'/'data.json').read_text())
    assert set(d['derived']) == {'grids', 'stride', 'zooms', 'ratios', 'epochs'} and d['recipe']['arch'] == 'efficientnet_lite0'
    assert d['recipe']['size'] == 64                                  # given: kept, not derived
    for k,v in d['derived'].items():
        assert d['recipe'][k] == v['value'] and f"--{k} " in out and v['reason'] in out, (k, out)
    assert d['recipe']['epochs'] == 10 and d['grids'] == d['recipe']['grids']             # 10 training images

def test_cli_options_reach_the_config_with_their_types(tmp, voc):
    "Every setting of SSDConfig given on the command line reaches `train` as the type of its field"
    from dataclasses import fields
    from ssd_nbs.cli import train_parser, _recipe
    from ssd_nbs.config import SSDConfig
    vals = dict(arch='tiny_cnn', size='96', stride='16', grids='6,3,1', zooms='1,2', ratios='1:1,2:1', nh='8', stem_ks='3',
                fine_ks='3', drop='0.1', match_iou='0.45', gamma='2', alpha='0.5', bbox_weight='2', clas_weight='3',
                score_thresh='0.2', nms_iou='0.6', max_det='7', epochs='5', bs='3', lr='0.003', freeze_epochs='2',
                body_lr_div='20', head_lr_div='4')
    argv = ['--no-pretrained'] + [a for k,v in vals.items() for a in (f"--{k.replace('_', '-')}", v)]
    for data in ([], ['--data', str(voc)]):
        kw = vars(train_parser().parse_args(argv + data))
        cfg = _recipe(kw.pop('recipe'), kw)
        if cfg is None: cfg = SSDConfig(**{k: kw[k] for k in vals}, pretrained=kw['pretrained'])  # what `train` derives from
        for f in fields(SSDConfig):
            v = getattr(cfg, f.name)
            want = {'int': int, 'float': (int, float), 'str': str, 'tuple': tuple, 'tuple | None': tuple,
                    'int | None': int, 'bool | None': bool}[str(f.type).replace('|None', ' | None')]
            assert isinstance(v, want) and not isinstance(v, str) or f.type == 'str', (f.name, v)
        assert (cfg.stride, cfg.size, cfg.grids, cfg.zooms, cfg.ratios, cfg.lr) == (16, 96, (6,3,1), (1.,2.), ((1.,1.),(2.,1.)), 0.003)

def test_predict_writes_pictures_and_detections(tmp, voc, run_dir):
    out,_ = run_dir
    img = voc/'JPEGImages'/'000000.jpg'
    r = run(tmp, 'ssd-predict', out/'model.safetensors', img, voc/'JPEGImages', '--out', tmp/'preds', '--score-thresh', 0.01, '--max-det', 3)
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp/'preds'/'detections.json').read_text())
    assert (d['score_thresh'], d['max_det']) == (0.01, 3) and len(d['images']) == 13
    assert d['images'][0]['file'] == str(img)
    for o in d['images']:
        assert (o['width'], o['height']) == (64, 64)
        assert len(o['boxes']) == len(o['labels']) == len(o['scores']) <= 3
        assert all(len(b) == 4 and 0 <= b[0] <= b[2] <= 64 and 0 <= b[1] <= b[3] <= 64 for b in o['boxes'])
        assert set(o['labels']) <= {'circle', 'square', 'triangle'} and all(0 < s <= 1 for s in o['scores'])
        assert (tmp/'preds'/o['picture']).is_file()
    assert len(list((tmp/'preds').glob('*.png'))) == 13

def test_errors_are_one_line_and_write_nothing(tmp, voc, run_dir):
    model = run_dir[0]/'model.safetensors'
    (tmp/'e').mkdir()
    (tmp/'e'/'empty_voc'/'Annotations').mkdir(parents=True)                                 # a VOC folder with no annotation
    (tmp/'e'/'text.pkl').write_text('not a model')
    torch.save({'weights': torch.zeros(2)}, tmp/'e'/'other.pkl')
    (tmp/'e'/'broken.jpg').write_bytes(b'\xff\xd8 truncated')
    cases = [  # command and arguments, what the message must name
        (('ssd-train', '--data', tmp/'e'/'missing', '--out', tmp/'e'/'o1'), str(tmp/'e'/'missing')),
        (('ssd-train', '--data', tmp/'e'/'empty_voc', '--out', tmp/'e'/'o2'), str(tmp/'e'/'empty_voc'/'Annotations')),
        (('ssd-predict', tmp/'e'/'missing.pkl', voc, '--out', tmp/'e'/'o4'), str(tmp/'e'/'missing.pkl')),
        (('ssd-predict', tmp/'e'/'text.pkl', voc, '--out', tmp/'e'/'o5'), str(tmp/'e'/'text.pkl')),
        (('ssd-predict', tmp/'e'/'other.pkl', voc, '--out', tmp/'e'/'o6'), str(tmp/'e'/'other.pkl')),
        (('ssd-predict', model, tmp/'e'/'broken.jpg', '--out', tmp/'e'/'o7'), str(tmp/'e'/'broken.jpg')),   # no readable image
    ]
    for (cmd,want),(rc,out,err) in zip(cases, main_all(tmp, [c for c,_ in cases])):
        assert rc == 1, (cmd, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and 'Traceback' not in err, (cmd, err)
        assert lines[0].startswith(f'{cmd[0]}: error: ') and want in lines[0], (cmd, err)
    assert sorted(o.name for o in (tmp/'e').iterdir()) == ['broken.jpg', 'empty_voc', 'other.pkl', 'text.pkl']  # no output

# ---- reliability: a loss that explodes, runs that die and are resumed, the same numbers twice, several processes

@pytest.fixture(scope='module')
def runs(tmp, voc, run_dir):
    """More runs, in this process: a twin of `run_dir` (with --fp16, a no-op on a CPU), one with a far too high learning
    rate, and a 1-epoch run resumed to 2 epochs (from a copy of `run_dir`)"""
    shutil.copytree(run_dir[0], tmp/'resumed')
    cmds = {'twin': ('ssd-train', '--data', voc, *TINY, '--fp16', '--out', tmp/'twin'),
            'nan': ('ssd-train', '--data', voc, *TINY, '--lr', 1e6, '--out', tmp/'nan'),
            'resumed': ('ssd-train', '--data', voc, *TINY, '--epochs', 2, '--resume', '--out', tmp/'resumed')}
    return dict(zip(cmds, main_all(tmp, list(cmds.values()))))

def _metrics(d): return json.loads((d/'metrics.json').read_text())

def test_same_seed_same_metrics(run_dir, runs, tmp):
    rc,out,err = runs['twin']
    assert rc == 0, err
    if not torch.cuda.is_available(): assert 'ssd-train: warning: fp16: no GPU' in err, err
    a,b = _metrics(run_dir[0]), _metrics(tmp/'twin')
    assert len(a['history']) == len(b['history']) == 1
    for k,v in a['history'][0].items(): assert b['history'][0][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert b['per_class'] == pytest.approx(a['per_class'], abs=1e-6)

def test_non_finite_loss_stops_with_one_line_and_no_model(runs, tmp):
    rc,out,err = runs['nan']
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err, err
    assert lines[0].startswith('ssd-train: error: training stopped: the loss became nan') and 'lower' in lines[0], err
    assert not (tmp/'nan'/'model.safetensors').exists() and not (tmp/'nan'/'checkpoint.pth').exists()

def test_resume_a_1_epoch_run_to_2_epochs(run_dir, runs, tmp):
    rc,out,err = runs['resumed']
    assert rc == 0, err
    first, m = _metrics(run_dir[0]), _metrics(tmp/'resumed')
    assert m['epochs'] == 2 and [h['epoch'] for h in m['history']] == [0, 1]
    assert m['history'][0] == first['history'][0]                                       # epoch 0: from the checkpoint
    ck = Checkpoint.load(tmp/'resumed'/'checkpoint.pth')
    assert ck.epoch == 2 and ck.history == m['history'][:2]
    before = load_file(run_dir[0]/'model.safetensors')
    after = load_file(tmp/'resumed'/'model.safetensors')
    assert any(not torch.equal(before[k], after[k]) for k in before)                     # it trained on
    assert not any(o.name.endswith('.tmp') for o in (tmp/'resumed').iterdir())

def test_killed_run_leaves_no_model_and_resumes(tmp, voc):
    "Kill -9 `ssd-train` once its first checkpoint is written: no model.safetensors, a readable checkpoint, and --resume ends the run"
    out = tmp/'killed'
    args = [_cmd('ssd-train'), '--data', str(voc), *map(str, TINY), '--epochs', '4', '--out', str(out)]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tmp))
    t = time.time()
    while not (out/'checkpoint.pth').exists() and p.poll() is None and time.time()-t < 240: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert (out/'checkpoint.pth').exists()
    assert not (out/'model.safetensors').exists()                                                # 3 epochs were still to come
    done = Checkpoint.load(out/'checkpoint.pth').epoch
    assert 1 <= done < 4
    rc, _, err = main(tmp, 'ssd-train', '--data', voc, *TINY, '--epochs', 4, '--resume', '--out', out)
    assert rc == 0, err
    m = _metrics(out)
    assert m['epochs'] == 4 and [h['epoch'] for h in m['history']] == [0, 1, 2, 3]
    load_detector(out/'model.safetensors')

def test_two_processes_with_gloo(tmp, voc, run_dir):
    "The distributed path as far as a CPU allows it: 2 processes (torchrun, gloo), each training on half of each batch"
    pytest.importorskip('accelerate')
    out = tmp/'ddp'
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', _cmd('ssd-train'),
                        '--data', str(voc), *map(str, TINY), '--epochs', '2', '--workers', '0', '--out', str(out)],
                       capture_output=True, text=True, env=_env(tmp), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(o.name for o in out.iterdir()) == ['checkpoint.pth', 'errors.json', 'errors.png', 'metrics.json', 'model.safetensors', 'predictions.png']
    m = _metrics(out)
    assert m['settings']['processes'] == 2 and m['epochs'] == 2 and 0 <= m['mAP'] <= 1
    assert r.stdout.count('mAP@0.5') == 1                                                # only the main process reports
    load_detector(out/'model.safetensors')

def test_predict_opens_a_model_pkl_of_version_0_1(tmp):
    "`tests/fixtures/model_v1.pkl` was written by ssd-train 0.1; ssd-predict gives the detections recorded with it"
    fx = Path(__file__).parent/'fixtures'
    want = json.loads((fx/'model_v1_preds.json').read_text())
    rc, out, err = main(tmp, 'ssd-predict', fx/'model_v1.pkl', *[fx/o['file'] for o in want], '--out', tmp/'v1',
                        '--score-thresh', 0.01, '--max-det', 5)
    assert rc == 0, err
    got = json.loads((tmp/'v1'/'detections.json').read_text())['images']
    for w,g in zip(want, got):
        assert g['labels'] == w['labels'] and g['scores'] == pytest.approx(w['scores'], abs=2e-4)
        assert torch.allclose(torch.tensor(g['boxes']), torch.tensor(w['boxes']), atol=0.02)

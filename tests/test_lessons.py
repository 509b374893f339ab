"""The notebooks read as lessons: no markdown cell of a lesson (`nbs/course/`) runs past about 250 words,
and every training demo that the tests run prints a baseline and asserts that the trained model beats it."""
import json, re
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent/'nbs'
LESSONS = sorted((NBS/'course').glob('*.ipynb'))

def cells(nb:Path, kind:str)->list: return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == kind]

def test_the_lessons_are_there(): assert len(LESSONS) >= 12 and LESSONS[0].name == '00_boxes.ipynb'

@pytest.mark.parametrize('nb', LESSONS, ids=lambda p: p.stem)
def test_markdown_cells_are_short(nb):
    long = [(i, n) for i,s in enumerate(cells(nb, 'markdown')) if (n := len(re.findall(r'\S+', s))) > 250]
    assert not long, f'{nb.name}: markdown cells over 250 words (index among markdown cells, words): {long}'

# the training demos that `nbdev_test` runs, and the words of the cell that checks them against a baseline
DEMOS = {'03_single_box': "pre['accuracy'] > base['accuracy']", '04_anchors': 'trained > base', '06_multiscale': 'coarse',
         '08_single_shot': 'trained > untrained', '11_bccd': 'trained > untrained'}

@pytest.mark.parametrize('name,check', DEMOS.items())
def test_training_demos_check_a_baseline(name, check):
    code = [s for s in cells(NBS/'course'/f'{name}.ipynb', 'code') if not re.match(r'#\|\s*(slow|eval:\s*false)', s)]
    assert any(check in s and 'assert' in s for s in code), f'{name}: no test-run cell asserts {check!r}'

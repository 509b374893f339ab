"""The site of the notebooks (`python .ci/build_site.py`) in a real browser: it is built into a temporary folder,
served on 127.0.0.1, and headless Chromium opens every page and checks that it loads, that every picture shows and
that every internal link leads to a page and an anchor of the site. Skipped where Chromium is not installed
(`apt-get install chromium chromium-driver`, as CI does)."""
import functools, importlib.util, json, re, shutil, subprocess, sys, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit, unquote
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
DRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason='needs Chromium and its driver: apt-get install chromium chromium-driver')

_spec = importlib.util.spec_from_file_location('build_site', ROOT/'.ci'/'build_site.py')
bs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(bs)

NB_PAGES = [bs.page_of(f.stem) for f in bs.notebooks()]
API_PAGES = [bs.api_page(m) for m in bs.modules()]
PAGES = NB_PAGES + API_PAGES

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')/'_site'
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'build_site.py'), '--out', str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    print(f'site built in {time.time()-t0:.1f}s: {r.stdout.strip()}')
    return out

class _Handler(SimpleHTTPRequestHandler):
    "Serves the site and remembers every request's path and status"
    log = []
    def log_request(self, code='-', size='-'): self.log.append((unquote(urlsplit(self.path).path), int(code)))
    def log_message(self, *args): pass

@pytest.fixture(scope='module')
def server(site):
    srv = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Handler, directory=str(site)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='module')
def browser():
    webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is not installed: pip install -e ".[dev]"')
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,900',
              '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'):   # nothing but this machine
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_page_load_timeout(120)
    yield d
    d.quit()

_JS = """
const imgs = [...document.images];
return {title: document.title, h1: document.querySelector('main h1') ? document.querySelector('main h1').textContent : null,
        ids: [...document.querySelectorAll('[id]')].map(e => e.id),
        links: [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href]),
        sidebar: [...document.querySelectorAll('nav.sidebar a[href]')].map(a => a.getAttribute('href')),
        sections: [...document.querySelectorAll('nav.sidebar .sec')].map(e => e.textContent),
        n_imgs: imgs.length,
        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src').slice(0, 60)),
        resources: performance.getEntriesByType('resource').map(r => r.name),
        stderr: [...document.querySelectorAll('pre.output.stderr, pre.output.error')].map(e => e.textContent.slice(0, 80)),
        warned: [...document.querySelectorAll('.outputs')].filter(e => /Warning\b/.test(e.textContent)).map(e => e.closest('section').id),
        cut: [...document.querySelectorAll('main pre')].filter(e => e.checkVisibility() && e.scrollWidth > e.clientWidth + 1
               && !['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map(e => e.textContent.slice(0, 60)),
        code_scrolls: [...document.querySelectorAll('main .highlight pre')].filter(e => e.checkVisibility() && e.scrollWidth > e.clientWidth + 1).length,
        page_width: [document.documentElement.scrollWidth, window.innerWidth],
        height: document.documentElement.scrollHeight,
        tall_pictures: [...document.querySelectorAll('.cell.md img')].filter(i => i.getBoundingClientRect().height > 441).map(i => i.alt),
        prose_first: (() => {   // a paragraph of prose (not the summary, not the module's note) comes before the first code shown
            const code = [...document.querySelectorAll('main .cell.code pre')].find(e => e.checkVisibility());
            return !code || [...document.querySelectorAll('main p')].some(p => !p.closest('blockquote') && !p.classList.contains('module-note')
                                && p.textContent.trim() && (p.compareDocumentPosition(code) & Node.DOCUMENT_POSITION_FOLLOWING)); })()};
"""

@pytest.fixture(scope='module')
def visited(browser, server):
    "{page: what the browser found on it, and the requests it made}"
    res = {}
    for p in PAGES:
        n = len(_Handler.log)
        browser.get(server + p)
        info = browser.execute_script(_JS)
        info['requests'] = _Handler.log[n:]
        res[p] = info
    return res

def test_the_site_has_a_page_per_notebook_and_per_module(site):
    assert NB_PAGES[0] == 'index.html' and len(NB_PAGES) == len(list((ROOT/'nbs').rglob('*.ipynb')))
    assert API_PAGES, 'no module of ssd_nbs names its notebook'
    built = {p.name for p in site.glob('*.html')}
    assert built == set(PAGES), f'missing: {set(PAGES)-built}, unexpected: {built-set(PAGES)}'

@pytest.mark.parametrize('page', PAGES)
def test_page_loads_with_a_title_and_the_sidebar(page, visited):
    v = visited[page]
    bad = [(path, code) for path, code in v['requests'] if code >= 400]
    assert not bad, f'{page}: requests that failed: {bad}'
    assert (f'/{page}', 200) in v['requests']
    assert v['title'].endswith(' - ssd_nbs') and len(v['title']) > len(' - ssd_nbs'), v['title']
    assert v['h1'], f'{page} has no heading'
    dup = {i for i in v['ids'] if v['ids'].count(i) > 1}
    assert not dup, f'{page}: ids given twice, so links to them are ambiguous: {dup}'
    assert set(PAGES) <= set(v['sidebar']), f'{page}: the sidebar misses {set(PAGES) - set(v["sidebar"])}'
    side_nbs = [h for h in v['sidebar'] if h in NB_PAGES]
    assert side_nbs[-len(NB_PAGES):] == NB_PAGES, f'{page}: the sidebar is not in reading order: {side_nbs}'
    assert v['sections'] == ['Course', 'Library', 'Reference'], f'{page}: the sidebar sections are {v["sections"]}'

def _pictures(nb):
    "How many pictures a notebook shows: its markdown images, and the stored image outputs of its shown cells"
    n = 0
    for c in nb['cells']:
        src = bs._src(c)
        if c['cell_type'] == 'markdown': n += len(re.findall(r'!\[[^\]]*\]\(', src)) + len(re.findall(r'<img\b', src))
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*(hide|output:\s*false)\s*$', src, re.M): continue
        n += sum(any(m in o.get('data', {}) for m in ('image/png', 'image/jpeg', 'image/gif')) for o in c.get('outputs', []))
    return n

@pytest.mark.parametrize('page', PAGES)
def test_every_picture_shows(page, visited):
    v = visited[page]
    assert not v['broken'], f'{page}: pictures that do not show: {v["broken"]}'
    if page in NB_PAGES:
        nb = json.loads(next((ROOT/'nbs').rglob(page[:-5] + '.ipynb')).read_text(encoding='utf-8'))
        assert v['n_imgs'] == _pictures(nb), f'{page} shows {v["n_imgs"]} pictures, its notebook has {_pictures(nb)}'

@pytest.mark.parametrize('page', PAGES)
def test_every_internal_link_resolves(page, visited, server, site):
    v, bad = visited[page], []
    for raw, href in v['links']:
        if not href.startswith(server):
            assert re.match(r'^(https?|mailto):', href), f'{page}: a link that is neither internal nor on the web: {raw}'
            continue
        target, frag = urldefrag(href[len(server):])
        target = target or page
        if target not in visited: ok = not frag and (site/unquote(target)).is_file()   # a picture, say
        else: ok = (not frag or unquote(frag) in visited[target]['ids'])
        if not ok: bad.append(raw)
    assert not bad, f'{page}: links that lead nowhere on the site: {bad}'

@pytest.mark.parametrize('page', PAGES)
def test_nothing_is_fetched_from_outside(page, visited, server):
    out = [r for r in visited[page]['resources'] if not (r.startswith(server) or r.startswith('data:'))]
    assert not out, f'{page} fetched {out}: the site must work offline'

def test_notebook_pages_link_their_module_and_names(visited):
    for mod, stem in bs.modules().items():
        hrefs = [h for h, _ in visited[bs.page_of(stem)]['links']]
        assert bs.api_page(mod) in hrefs, f'{stem} does not link the API reference of {mod}'
    api = [h for p in NB_PAGES for h, _ in visited[p]['links'] if '.html#' in h and h.split('#')[0] in API_PAGES]
    assert api, 'no backticked name of the notebooks links to its API entry'

def _a_screenshot(png):
    from PIL import Image
    im = Image.open(png)
    lo, hi = im.convert('L').getextrema()
    assert im.size == (1280, 860) and hi - lo > 100, f'a blank screenshot: {png.name}'

def test_screenshot_of_the_home_page(site, tmp_path):
    "`build_site.py --screenshot` retakes the README's picture of the site"
    bs.screenshot(site, tmp_path/'site.png')
    _a_screenshot(tmp_path/'site.png')

@pytest.mark.parametrize('page', PAGES)
def test_no_page_shows_a_warning_or_stderr(page, visited):
    "What a learner reads is the notebook's result: a warning or stderr box on a page is noise (or a bug) left in a notebook"
    assert not (visited[page]['stderr'] or visited[page]['warned']), \
        f'{page} shows stderr or an error: {visited[page]["stderr"]}, a warning in the outputs of cells {visited[page]["warned"]}'

@pytest.mark.parametrize('page', PAGES)
def test_nothing_is_cut_at_the_right_edge(page, visited):
    "Long code lines wrap (under their start), other text scrolls in its box; the page is never wider than the window"
    v = visited[page]
    assert not v['cut'], f'{page}: text cut at the right edge of its box: {v["cut"]}'
    assert not v['code_scrolls'], f'{page}: {v["code_scrolls"]} code blocks scroll sideways instead of wrapping their long lines'
    assert v['page_width'][0] <= v['page_width'][1], f'{page} is wider than the window: {v["page_width"]}'
    assert not v['tall_pictures'], f'{page}: pictures in the prose taller than the window allows: {v["tall_pictures"]}'

@pytest.mark.parametrize('page', NB_PAGES)
def test_a_page_opens_with_prose_not_imports(page, visited):
    "A notebook's imports (its first code cell, when it only imports) are folded: the page says what it is about first"
    assert visited[page]['prose_first'], f'{page}: code comes before any prose'

def test_imports_only_cells_are_folded():
    assert bs.only_imports('from __future__ import annotations\nimport torch\ntry: import onnx\nexcept ImportError: onnx = None')
    assert bs.only_imports("import warnings; warnings.filterwarnings('ignore')")
    assert not bs.only_imports('import torch\nx = torch.zeros(2)') and not bs.only_imports('%time import torch')
    test = 'import os, numpy as np\nfrom torch import Tensor\nfrom ssd_nbs.core import *\nimport ssd_nbs.anchors'
    assert bs.imported(test) == ['numpy', 'torch', 'ssd_nbs.core', 'ssd_nbs.anchors']
    nb = {'cells': [{'cell_type': 'markdown', 'source': '# T'}, {'cell_type': 'code', 'source': '#| hide\nimport os'},
                    {'cell_type': 'code', 'source': '#| export\nimport torch'}, {'cell_type': 'code', 'source': 'import math'}]}
    assert bs.first_code(nb) == 2
    html = bs.cell_html(2, nb['cells'][2], str, 'ssd_nbs.core', fold=True)
    assert '<details class="imports"><summary>imports: torch</summary>' in html and 'ssd_nbs.core</a>' in html

def test_screenshot_of_a_lesson(site, tmp_path, browser, server):
    "`build_site.py --screenshot-page` retakes the README's picture of a lesson: scrolled to a heading, with a picture in view"
    bs.screenshot(site, tmp_path/'lesson.png', bs.LESSON_SHOT)
    _a_screenshot(tmp_path/'lesson.png')
    assert sorted(p.name for p in site.glob('_*')) == [], 'the screenshot left a file in the site'
    browser.get(server + bs.LESSON_SHOT)
    seen = browser.execute_script("return [...document.querySelectorAll('main img')].filter(i => { const r = i.getBoundingClientRect(); "
                                  "return r.top >= 0 && r.bottom <= 860 && r.height > 150; }).length")
    assert seen, f'no picture in view at {bs.LESSON_SHOT}'

"Install ssd_nbs from settings.ini (nbdev 2 layout), without pkg_resources."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

def _reqs(key): return cfg.get(key, '').split()

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    author=cfg['author'], author_email=cfg['author_email'], license=cfg['license'],
    url=cfg['git_url'], project_urls={'Source': cfg['git_url']}, keywords=cfg['keywords'].split(),
    classifiers=['Programming Language :: Python :: 3', 'Intended Audience :: Education',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence', 'Framework :: Jupyter'],
    long_description=open('README.md', encoding='utf-8').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True, zip_safe=False,
    python_requires='>=' + cfg['min_python'],
    install_requires=_reqs('requirements'),
    extras_require={'dev': _reqs('dev_requirements'), 'onnx': _reqs('onnx_requirements')},
    entry_points={'console_scripts': _reqs('console_scripts'), 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)

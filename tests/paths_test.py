"""Output paths are checked before any work: each refusal names the flag and writes nothing."""
import os

import pytest

from pga_tf.utils import paths


def test_output_dir(tmp_path):
    (tmp_path / 'file').write_text('keep me')
    assert paths.output_dir('run_dir', str(tmp_path / 'new' / 'deeper')) == str(tmp_path / 'new' / 'deeper')
    assert paths.output_dir('run_dir', str(tmp_path)) == str(tmp_path)
    for bad, reason in [(tmp_path / 'file', 'is a file'), (tmp_path / 'file' / 'x', 'is a file'),
                        ('', 'is empty')]:
        with pytest.raises(paths.PathError, match=f'--stats_dir.*{reason}'):
            paths.output_dir('stats_dir', str(bad) if bad else bad)
    assert sorted(os.listdir(tmp_path)) == ['file'] and (tmp_path / 'file').read_text() == 'keep me'


def test_output_file(tmp_path):
    (tmp_path / 'folder.png').mkdir()
    (tmp_path / 'file').write_text('keep me')
    assert paths.output_file('out', str(tmp_path / 'a' / 'grid.png'), '.png')
    for bad, reason in [('grid', 'ending in .png'), ('grid.jpg', 'ending in .png'),
                        ('.png', 'ending in .png'), (tmp_path / 'folder.png', 'is a folder'),
                        (tmp_path / 'file' / 'grid.png', 'is a file')]:
        with pytest.raises(paths.PathError, match=f'--out.*{reason}'):
            paths.output_file('out', str(bad), '.png')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')
def test_unwritable_folder(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    with pytest.raises(paths.PathError, match='not writable'):
        paths.output_dir('export_dir', str(locked / 'model'))


def test_inside(tmp_path):
    (tmp_path / 'images' / 'runs').mkdir(parents=True)
    os.symlink(tmp_path / 'images' / 'runs', tmp_path / 'link')
    assert paths.inside(str(tmp_path / 'images' / 'runs' / 'x'), str(tmp_path / 'images'))
    assert paths.inside(str(tmp_path / 'link'), str(tmp_path / 'images'))
    assert not paths.inside(str(tmp_path / 'images2'), str(tmp_path / 'images'))


def test_write_atomic_replaces_whole(tmp_path):
    path = str(tmp_path / 'result.json')
    paths.write_atomic(path, 'first')
    paths.write_atomic(path, 'second')
    assert open(path).read() == 'second' and os.listdir(tmp_path) == ['result.json']

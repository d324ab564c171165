"""The README's "Use it from Python" code, run as written: the README cannot drift from the code."""
import pathlib
import re

import keras
import numpy as np
from PIL import Image

import pga_tf

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'


def python_blocks(section):
    """The ```python blocks of a README section, in order."""
    text = README.read_text().split(f'\n## {section}\n', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```python\n(.*?)```', text, re.S)


def test_use_it_from_python_runs_as_written(tmp_path, monkeypatch):
    blocks = python_blocks('Use it from Python')
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(blocks[0], 'README.md: Use it from Python (fit)', 'exec'), ns)

    img_rec = ns['history'].history['img_rec']
    assert np.all(np.isfinite(img_rec)) and img_rec[-1] < 0.5 * img_rec[0]
    assert Image.open('discs/samples.png').size == (128, 128)
    assert list(pathlib.Path('discs/logs/train').glob('events.out.tfevents.*'))
    assert not pathlib.Path('discs/backup').exists()  # a finished fit drops its backup
    # The checkpoint holds the whole state: a fresh model of the same networks reads it.
    model = ns['model']
    fresh = pga_tf.PGA(keras.models.clone_model(model.encoder),
                       keras.models.clone_model(model.decoder), 'vpga', model.loss_weights)
    fresh.compile(enc_optimizer=keras.optimizers.SGD(momentum=0.9),
                  dec_optimizer=keras.optimizers.SGD(momentum=0.9))
    fresh.load_weights('discs/pga.weights.h5')
    assert int(fresh.step.numpy()) == int(model.step.numpy()) == 10 * 32
    for a, b in zip(fresh.weights + fresh.enc_optimizer.variables,
                    model.weights + model.enc_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    exec(compile(blocks[1], 'README.md: Use it from Python (Trainer)', 'exec'), ns)
    assert bool(ns['losses']['finite']) and int(ns['trainer'].step.numpy()) == 32
    assert pathlib.Path('discs/checkpoints/checkpoint').is_file()

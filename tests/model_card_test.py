"""The model card: the run's evaluations at the exported step, its settings, both files."""
import json
import re

from pga_tf.serving import model_card
from pga_tf.training import cli_flags


def _result(path, fid, std, rec, kid):
    """A result file as pga_tf.evaluate writes it, its fields read from its name."""
    features, sampler, step, size = re.fullmatch(
        r'eval_(classifier_v2)_(?:(gmm)_)?(\d+)_(\d+x\d+)\.json', path.name).groups()
    num, repeats = map(int, size.split('x'))
    path.write_text(json.dumps({
        'fid': {'mean': fid, 'std': std, 'values': [fid] * repeats}, 'rec_fid': rec,
        'samples': {'kid': kid}, 'features': features, 'sampler': sampler or 'prior',
        'step': int(step), 'num_samples': num}))


def test_card_holds_the_runs_evaluations_at_its_step(tmp_path):
    _result(tmp_path / 'eval_classifier_v2_600_2000x3.json', 59.0, 0.75, 5.0, 0.01)
    _result(tmp_path / 'eval_classifier_v2_gmm_600_2000x3.json', 28.7, 0.3, 5.0, 0.002)
    _result(tmp_path / 'eval_classifier_v2_600_100x1.json', 70.0, 0.0, 6.0, 0.02)
    _result(tmp_path / 'eval_classifier_v2_6000_2000x3.json', 1.0, 0.0, 1.0, 0.0)  # another step
    (tmp_path / 'eval_classifier_v2_600_50x1.json').write_text('{"fid": ')  # damaged: passed over
    config = cli_flags.read_preset('mnist_5k', 'vpga')
    card = model_card.build(config, 600, str(tmp_path), signatures=['sample', 'serving_default'])
    assert [(e['sampler'], e['num_samples'], e['fid_mean']) for e in card['evaluations']] == [
        ('gmm', 2000, 28.7), ('prior', 2000, 59.0), ('prior', 100, 70.0)]
    assert card['settings']['vkld'] == config.vkld and card['training_step'] == 600
    model_card.write(card, str(tmp_path))
    assert json.loads((tmp_path / model_card.JSON_NAME).read_text()) == card
    text = (tmp_path / model_card.MARKDOWN_NAME).read_text()
    assert '# VPGA on mnist_5k' in text and '| classifier_v2 | gmm | 3 x 2000 | 28.70 ± 0.30 |' in text
    assert 'Perceptual Generative Autoencoders' in text and '## Limitations' in text

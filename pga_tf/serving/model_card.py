"""The model card of an export: what produced the generator, how it scored, what it is for.

Each SavedModel version folder holds `model_card.json` (machine-readable) and `model_card.md`
(the same, for people); `pga_tf.sample --card` prints the latter.
"""
import glob
import json
import os

import pga_tf
from pga_tf.core import losses

JSON_NAME, MARKDOWN_NAME = 'model_card.json', 'model_card.md'
PAPER = ('Zhang, Zhang, Li, Bengio, Paull. Perceptual Generative Autoencoders. ICML 2020. '
         'Original code: github.com/zj10/PGA')
# The settings a reader needs to know what was trained (the run's flags.cfg holds them all).
SETTINGS = ('dataset', 'model', 'arch', 'z_dim', 'width', 'bn', 'precision', 'crop', 'resize',
            'zn_rec', 'zh_rec', 'nll', 'vrec', 'vkld', 'init_steps', 'ramp_steps', 'optimizer', 'lr',
            'adam_beta1', 'clip_norm', 'batch_size', 'seed')
INTENDED_USE = ('Research on autoencoder-based generative models: sampling images like the '
                'training data, studying the latent space, comparing methods.')
LIMITS = ('Generates images like its training data only; it inherits that data\'s biases. Sample '
          'quality is measured by the scores below and nothing else; scores with the offline '
          'classifier features are not Inception FIDs and not comparable to the paper\'s. Not '
          'for identifying, verifying or describing real people.')


def evaluations(run_path, step):
    """The results of `pga_tf.evaluate` that the run folder holds for `step`, largest first
    (read from the result files themselves, whatever their names)."""
    found = []
    for path in glob.glob(os.path.join(run_path, 'eval_*.json')):
        try:
            with open(path) as f:
                result = json.load(f)
            if result.get('step') != step:
                continue
            found.append({'features': result['features'], 'sampler': result.get('sampler', 'prior'),
                          'num_samples': int(result['num_samples']),
                          'repeats': len(result['fid']['values']),
                          'fid_mean': result['fid']['mean'], 'fid_std': result['fid']['std'],
                          'rec_fid': result['rec_fid'], 'kid': result.get('samples', {}).get('kid')})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged or foreign file is not a result
    return sorted(found, key=lambda e: (-e['num_samples'] * e['repeats'], e['features'], e['sampler']))


def build(config, step, run_path, signatures):
    """The card (a dict) of the generator of `config`'s run at `step`."""
    return {
        'name': f'{config.model.upper()} on {config.dataset}',
        'pga_tf_version': pga_tf.__version__,
        'method': config.model,
        'variational': config.model in losses.VARIATIONAL,
        'training_step': step,
        'settings': {name: getattr(config, name) for name in SETTINGS},
        'evaluations': evaluations(run_path, step),
        'signatures': sorted(signatures),
        'litert': {},  # LiteRT model file -> the signature it was converted from
        'paper': PAPER,
        'intended_use': INTENDED_USE,
        'limitations': LIMITS,
    }


def markdown(card):
    """The card as a short Markdown page."""
    s = card['settings']
    lines = [f"# {card['name']}", '',
             f"Generator of a {card['method']} model (pga_tf {card['pga_tf_version']}), step "
             f"{card['training_step']}: `{s['arch']}` at width {s['width']}, z_dim {s['z_dim']}"
             f"{', batch norm' if s['bn'] else ''}, {s['precision']}.", '',
             '## Training settings', '',
             ', '.join(f'{k} {v}' for k, v in s.items()), '', '## Evaluation', '']
    if card['evaluations']:
        lines += ['| features | sampler | samples | FID | reconstruction FID | KID |',
                  '|---|---|---|---|---|---|']
        for e in card['evaluations']:
            kid = '' if e['kid'] is None else f"{e['kid']:.4g}"
            lines.append(f"| {e['features']} | {e['sampler']} | {e['repeats']} x {e['num_samples']} "
                         f"| {e['fid_mean']:.2f} ± {e['fid_std']:.2f} | {e['rec_fid']:.2f} | {kid} |")
    else:
        lines.append('None at this step (run `python -m pga_tf.evaluate` before exporting).')
    lines += ['', '## Signatures', '', ', '.join(f'`{n}`' for n in card['signatures']), '']
    if card.get('litert'):
        lines += ['LiteRT models: ' + ', '.join(f'`{f}` ({s})' for f, s in card['litert'].items()), '']
    lines += ['## Intended use', '', card['intended_use'], '', '## Limitations', '',
              card['limitations'], '', '## Reference', '', card['paper'], '']
    return '\n'.join(lines)


def write(card, folder):
    """Writes model_card.json and model_card.md into `folder` (a version being written)."""
    with open(os.path.join(folder, JSON_NAME), 'w') as f:
        json.dump(card, f, indent=2)
    with open(os.path.join(folder, MARKDOWN_NAME), 'w') as f:
        f.write(markdown(card))

"""Tries every command with hostile input and faults; counts the cases that end badly.

  python benchmarks/hostile_input.py [--jobs=2] [--only=SUBSTRING]

Each case runs one command (train, evaluate, export, sample, bench, study) as a user would, in
a folder of its own holding copies of a short trained run, its export, image folders and a
statistics cache, some of them damaged first. A case is clean when the command
  - refuses it with exit status 2 and exactly one line on stderr that names the flag or file,
    and the case's folder is left byte for byte as it was (nothing written, nothing lost); or
  - behaves as documented: exit status 0 and the case's own check (a warning that names the
    file, a result kept, a checkpoint set aside rather than deleted, ...), with every file of
    the run that existed before still there (or moved to checkpoints/damaged/).
Anything else is a defect: a traceback, another exit status, more than one line, a file lost.
Prints each defect and the totals: tried, clean (refused, behaved), defective.
"""
import concurrent.futures
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

import numpy as np
from absl import app, flags, logging

flags.DEFINE_integer('jobs', 2, 'Cases run at once.')
flags.DEFINE_string('only', '', 'Run only the cases whose name holds this.')
FLAGS = flags.FLAGS

# A tiny run: every training case finishes in seconds.
TINY = ['--width=0.0625', '--z_dim=4', '--batch_size=8', '--train_steps=2', '--log_every=1',
        '--sample_every=1000', '--checkpoint_every=1000']


@dataclasses.dataclass
class Case:
    name: str
    command: str  # pga_tf module: train, evaluate, ...
    args: list
    expect: str  # 'refused' or 'ok'
    says: str = ''  # a substring of the refusal line, or of stderr for 'ok'
    prepare: Callable = None  # (case folder) -> None: damages or adds files first
    check: Callable = None  # (case folder, stderr) -> '' or what is wrong, for 'ok'
    env: dict = dataclasses.field(default_factory=dict)
    timeout: int = 300


# The shared material, made once: a run (steps 2 and 4 checkpointed), its export, images.

def make_material(root):
    from PIL import Image

    from pga_tf.serving import export_lib
    from pga_tf.training import cli_flags, run_folder, train_lib

    config = dataclasses.replace(cli_flags.read_preset('mnist_5k', 'vpga'), width=0.0625, z_dim=4,
                                 batch_size=8, train_steps=4, checkpoint_every=2, log_every=1,
                                 sample_every=1000)
    train_lib.train(config, os.path.join(root, 'run'))
    run = run_folder.RunFolder(os.path.join(root, 'run')).load()
    export_lib.export(run.encoder, run.decoder, os.path.join(root, 'export'))
    os.makedirs(os.path.join(root, 'stats'))  # the digits classifier ships: only statistics go here
    rng = np.random.RandomState(0)
    os.makedirs(os.path.join(root, 'images'))
    for i in range(16):
        Image.fromarray(rng.randint(0, 256, (40, 36, 3)).astype(np.uint8)).save(
            os.path.join(root, 'images', f'{i}.{"png" if i % 2 else "jpg"}'))
    return root


# Damage and additions, applied to a case's own copies.

def truncate(path, keep=0.5):
    with open(path, 'rb') as f:
        head = f.read()
    with open(path, 'wb') as f:
        f.write(head[:int(len(head) * keep)])


def newest_data(folder):
    return os.path.join(folder, 'run', 'checkpoints', 'ckpt-4.data-00000-of-00001')


def nan_checkpoint(folder):
    from pga_tf.training import run_folder

    run = run_folder.RunFolder(os.path.join(folder, 'run'))
    tr = run.read_config().build_trainer(run.checkpoint_dir)
    tr.restore(run.checkpoints()[0])
    weight = tr.decoder.weights[0]
    weight.assign(np.full(weight.shape, np.nan, np.float32))
    tr.save()


def stats_file(folder):
    names = [n for n in os.listdir(os.path.join(folder, 'stats')) if n.endswith('.npz')]
    return os.path.join(folder, 'stats', names[0]) if names else None


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
        f.write(content)


def dead_pid():
    return subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()


def images_with(extra):
    """An image folder with `extra(folder)` added."""
    def prepare(folder):
        extra(os.path.join(folder, 'images'))
    return prepare


def tiff_named_png(images):
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(os.path.join(images, 'tiff.png'),
                                                          format='TIFF')


def only_text(images):
    for name in os.listdir(images):
        os.remove(os.path.join(images, name))
    write(os.path.join(images, 'a.png'), 'not a picture')


# Checks of cases that should work.

def exists(*relative):
    def check(folder, stderr):
        missing = [r for r in relative if not os.path.exists(os.path.join(folder, r))]
        return f'missing {missing}' if missing else ''
    return check


def absent(*relative):
    def check(folder, stderr):
        there = [r for r in relative if os.path.exists(os.path.join(folder, r))]
        return f'still there: {there}' if there else ''
    return check


def resumed_from(step):
    def check(folder, stderr):
        return '' if f'steps {step} ->' in stderr else f'did not resume from step {step}'
    return check


def lr_applied(folder, stderr):
    with open(os.path.join(folder, 'run', 'flags.cfg')) as f:
        return '' if '--lr=0.05' in f.read() else 'flags.cfg does not hold --lr=0.05'


def both_evaluations_kept(folder, stderr):
    names = sorted(n for n in os.listdir(os.path.join(folder, 'run')) if n.startswith('eval_'))
    return '' if len(names) == 2 else f'evaluation files {names}'


def all_checks(*checks):
    def check(folder, stderr):
        return '; '.join(filter(None, (c(folder, stderr) for c in checks)))
    return check


def cases():
    run = '--run_dir=run'
    ev = ['--stats_dir=stats', '--num_samples=100', '--repeats=1', '--real_samples=200']
    folder_train = ['--dataset=folder', '--data_dir=images', '--crop=0', '--arch=conv_32', '--channels=3',
                    '--model=ae', *TINY]
    new = ['--dataset=mnist_5k', '--model=vpga', '--run_dir=new', *TINY]
    refused = lambda name, command, args, says, **kw: Case(name, command, args, 'refused', says, **kw)
    ok = lambda name, command, args, check=None, says='', **kw: Case(name, command, args, 'ok', says,
                                                                      check=check, **kw)
    out = []
    # train: values
    for flag, value, says in [
            ('lr', 'nan', '--lr'), ('lr', 'inf', '--lr'), ('lr', '-1', '--lr'), ('lr', '0', '--lr'),
            ('zn_rec', 'nan', '--zn_rec'), ('zn_rec', '-1', '--zn_rec'), ('vkld', 'inf', '--vkld'),
            ('batch_size', '0', '--batch_size'), ('batch_size', 'x', '--batch_size'),
            ('z_dim', '0', '--z_dim'), ('channels', '2', '--channels'), ('width', '0', '--width'),
            ('width', 'nan', '--width'), ('train_steps', '-1', '--train_steps'),
            ('crop', '-5', '--crop'), ('dataset', 'nope', 'nope'), ('model', 'nope', 'nope'),
            ('arch', 'nope', '--arch'), ('arch', 'conv_64', '--arch=conv_64'),
            ('strategy', 'nope', '--strategy'), ('precision', 'nope', '--precision'),
            ('optimizer', 'nope', '--optimizer'), ('cpu_replicas', '-1', '--cpu_replicas'),
            ('log_every', '0', '--log_every'), ('checkpoint_every', '0', '--checkpoint_every'),
            ('on_nonfinite', 'nope', '--on_nonfinite'), ('max_skips', '-1', '--max_skips'),
            ('features', 'nope', '--features'), ('init_steps', '-1', '--init_steps'),
            ('resize', 'nope', '--resize'), ('sigma_init', '0', '--sigma_init')]:
        out.append(refused(f'train --{flag}={value}', 'train', [*new, f'--{flag}={value}'], says))
    out += [
        refused('train unknown flag', 'train', [*new, '--learning_rate=0.1'], 'learning_rate'),
        refused('train extra argument', 'train', [*new, 'extra'], 'extra'),
        refused('train --ramp_steps=-5', 'train', [*new, '--ramp_steps=-5'], '--ramp_steps'),
        refused('train --clip_norm=nan', 'train', [*new, '--clip_norm=nan'], '--clip_norm'),
        refused('train --logdet_floor=maybe', 'train', [*new, '--logdet_floor=maybe'], '--logdet_floor'),
        refused('train --jit_compile=nope', 'train', [*new, '--jit_compile=nope'], '--jit_compile'),
        ok('train with a damaged XLA choice cache', 'train', [*new, '--stats_dir=stats'],
           exists('new/checkpoints/ckpt-2.index'),
           prepare=lambda f: write(os.path.join(f, 'stats', 'jit_choice.json'), '{"AMD | TF": {"xla"')),
        refused('train --flagfile missing', 'train', [*new, '--flagfile=nope.cfg'], 'nope.cfg'),
        refused('train --flagfile garbage', 'train', [*new, '--flagfile=bad.cfg'], '--lr=abc',
                prepare=lambda f: write(os.path.join(f, 'bad.cfg'), '--lr=abc\n')),
        refused('train --dataset=mnist offline', 'train',
                ['--dataset=mnist', '--model=vpga', '--run_dir=new', '--data_dir=tfds', *TINY],
                '--data_dir'),
        refused('train --dataset=celeba offline', 'train',
                ['--dataset=celeba', '--model=vpga', '--run_dir=new', '--data_dir=tfds', *TINY],
                '--data_dir'),
        refused('train --dataset=celeba --crop wider than its images', 'train',
                ['--dataset=celeba', '--model=vpga', '--run_dir=new', '--crop=200', *TINY],
                '--crop=200'),
        refused('train --strategy=multi_worker without TF_CONFIG', 'train',
                [*new, '--strategy=multi_worker'], 'TF_CONFIG'),
        refused('train --strategy=tpu without a TPU', 'train', [*new, '--strategy=tpu'], 'TPU'),
        refused('train --strategy=multi_worker with a broken TF_CONFIG', 'train',
                [*new, '--strategy=multi_worker'], 'TF_CONFIG', env={'TF_CONFIG': '{not json'}),
        ok('train --strategy=mirrored on one device', 'train', [*new, '--strategy=mirrored'],
           exists('new/checkpoints/ckpt-2.index'), says='replica (the default strategy)'),
        refused('train folder missing', 'train', [*folder_train, '--data_dir=nope', '--run_dir=new'],
                'nope'),
        refused('train folder empty', 'train', [*folder_train, '--data_dir=empty', '--run_dir=new'],
                'no .png', prepare=lambda f: os.makedirs(os.path.join(f, 'empty'))),
        refused('train folder of text files', 'train', [*folder_train, '--run_dir=new'],
                'no readable', prepare=images_with(only_text)),
        ok('train folder with a TIFF named .png', 'train', [*folder_train, '--run_dir=new'],
           exists('new/checkpoints/ckpt-2.index'), says='tiff.png',
           prepare=images_with(tiff_named_png)),
        ok('train folder with a truncated JPEG', 'train', [*folder_train, '--run_dir=new'],
           exists('new/checkpoints/ckpt-2.index'), says='0.jpg',
           prepare=lambda f: truncate(os.path.join(f, 'images', '0.jpg'))),
        refused('train folder images smaller than --crop', 'train',
                [*folder_train, '--crop=108', '--run_dir=new'], '--crop=108'),
        refused('train --run_dir inside --data_dir', 'train',
                [*folder_train, '--run_dir=images/runs/x'], '--data_dir'),
        refused('train --run_dir is a file', 'train', [*new, '--run_dir=file'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('train --run_dir under a file', 'train', [*new, '--run_dir=file/run'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('train --run_dir cannot be created', 'train', [*new, '--run_dir=/proc/pga_run'],
                '/proc/pga_run'),
        refused('train --stats_dir is a file', 'train',
                [*new, '--eval_every=1', '--stats_dir=file'], '--stats_dir',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('train --features=inception offline', 'train',
                [*new, '--eval_every=1', '--features=inception', '--stats_dir=stats'],
                '--inception_path'),
        refused('train --features=classifier without labels', 'train',
                [*folder_train, '--run_dir=new', '--eval_every=1', '--features=classifier',
                 '--stats_dir=stats'], 'labels'),
    ]
    # train: resuming an existing run
    out += [
        refused('resume --z_dim changed', 'train', [run, '--z_dim=8'], '--z_dim'),
        refused('resume --model changed', 'train', [run, '--model=lpga'], '--model'),
        refused('resume --dataset changed', 'train', [run, '--dataset=folder'], '--dataset'),
        refused('resume --bn changed', 'train', [run, '--bn'], '--bn'),
        ok('resume --lr changed', 'train', [run, '--lr=0.05', '--train_steps=5'],
           all_checks(lr_applied, resumed_from(4)), says='--lr changed'),
        ok('resume without the pointer file', 'train', [run, '--train_steps=5'], resumed_from(4),
           prepare=lambda f: os.remove(os.path.join(f, 'run', 'checkpoints', 'checkpoint'))),
        ok('resume with the newest checkpoint truncated', 'train', [run, '--train_steps=5'],
           all_checks(resumed_from(2), exists('run/checkpoints/damaged/ckpt-4.index')),
           says='damaged', prepare=lambda f: truncate(newest_data(f))),
        refused('resume with every checkpoint truncated', 'train', [run, '--train_steps=5'],
                'damaged', prepare=lambda f: [truncate(p) for p in _data_files(f)]),
        refused('resume with flags.cfg damaged', 'train', [run], 'flags.cfg',
                prepare=lambda f: write(os.path.join(f, 'run', 'flags.cfg'), '--z_dim=abc\n')),
        refused('resume with flags.cfg missing', 'train', [run], 'flags.cfg',
                prepare=lambda f: os.remove(os.path.join(f, 'run', 'flags.cfg'))),
        ok('resume with leftovers of interrupted writes', 'train', [run, '--train_steps=5'],
           absent('run/checkpoints/ckpt-6_temp', 'run/flags.cfg.tmp-1'),
           prepare=lambda f: (os.makedirs(os.path.join(f, 'run', 'checkpoints', 'ckpt-6_temp')),
                              write(os.path.join(f, 'run', 'flags.cfg.tmp-1'), 'half'))),
        ok('resume with a stale lock file', 'train', [run, '--train_steps=5'], resumed_from(4),
           prepare=lambda f: write(os.path.join(f, 'run', '.lock'), '999999')),
        refused('second trainer on a run', 'train', [run, '--train_steps=5'], 'another process',
                prepare=hold_lock),
        ok('resume with nothing left to do', 'train', [run], resumed_from(4)),
    ]
    # evaluate
    out += [
        refused('evaluate without --run_dir', 'evaluate', ev, '--run_dir'),
        refused('evaluate missing run', 'evaluate', ['--run_dir=nope', *ev], 'nope'),
        refused('evaluate --run_dir is a file', 'evaluate', ['--run_dir=file', *ev], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('evaluate --num_samples=1', 'evaluate', [run, *ev, '--num_samples=1'], '--num_samples'),
        refused('evaluate --repeats=0', 'evaluate', [run, *ev, '--repeats=0'], '--repeats'),
        refused('evaluate --real_samples=1', 'evaluate', [run, *ev, '--real_samples=1'], '--real_samples'),
        refused('evaluate --eval_batch_size=0', 'evaluate', [run, *ev, '--eval_batch_size=0'],
                '--eval_batch_size'),
        refused('evaluate --features=nope', 'evaluate', [run, *ev, '--features=nope'], '--features'),
        refused('evaluate --features=inception offline', 'evaluate',
                [run, *ev, '--features=inception'], '--inception_path'),
        refused('evaluate --inception_path missing', 'evaluate',
                [run, *ev, '--features=inception', '--inception_path=nope'], 'nope'),
        refused('evaluate --stats_dir is a file', 'evaluate', [run, *ev, '--stats_dir=file'],
                '--stats_dir', prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('evaluate --checkpoint missing', 'evaluate', [run, *ev, '--checkpoint=nope'], 'nope'),
        refused('evaluate --checkpoint damaged', 'evaluate',
                [run, *ev, '--checkpoint=run/checkpoints/ckpt-4'], 'ckpt-4',
                prepare=lambda f: truncate(newest_data(f))),
        refused('evaluate a checkpoint of non-finite weights', 'evaluate', [run, *ev],
                'non-finite', prepare=nan_checkpoint),
        refused('evaluate extra argument', 'evaluate', [run, *ev, 'extra'], 'argument'),
        refused('evaluate --sampler=nope', 'evaluate', [run, *ev, '--sampler=nope'], '--sampler'),
        ok('evaluate --sampler=gmm', 'evaluate', [run, *ev, '--sampler=gmm'],
           exists('run/eval_classifier_v2_gmm_4_100x1.json', 'run/gmm_4.npz')),
        ok('evaluate --sampler=gmm with a damaged mixture', 'evaluate', [run, *ev, '--sampler=gmm'],
           exists('run/eval_classifier_v2_gmm_4_100x1.json'), says='fitting the mixture again',
           prepare=lambda f: write(os.path.join(f, 'run', 'gmm_4.npz'), b'PK not a mixture')),
        ok('evaluate with the newest checkpoint damaged', 'evaluate', [run, *ev],
           all_checks(exists('run/eval_classifier_v2_2_100x1.json'),
                      exists('run/checkpoints/ckpt-4.index')), says='damaged',
           prepare=lambda f: truncate(newest_data(f))),
        ok('evaluate twice, smaller second', 'evaluate', [run, *ev, '--num_samples=50'],
           both_evaluations_kept, prepare=evaluated),
    ]
    for damage, prepare in [('truncated', lambda f: truncate(stats_file(f))),
                            ('NaN', lambda f: _nan_stats(stats_file(f))),
                            ('wrong dimension', lambda f: _wrong_dim_stats(stats_file(f)))]:
        out.append(ok(f'evaluate with {damage} cached statistics', 'evaluate', [run, *ev],
                      exists('run/eval_classifier_v2_4_100x1.json'), says='computing the statistics again',
                      prepare=_with_stats(prepare)))
    # export
    exp = [run, '--export_dir=out']
    out += [
        refused('export without flags', 'export', [], '--run_dir'),
        refused('export missing run', 'export', ['--run_dir=nope', '--export_dir=out'], 'nope'),
        refused('export --export_dir is a file', 'export', [run, '--export_dir=file'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('export --export_dir under a file', 'export', [run, '--export_dir=file/x'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('export --export_dir is a version folder', 'export', [run, '--export_dir=export/1'],
                'version folder'),
        refused('export --export_dir holds other files', 'export', [run, '--export_dir=.'],
                '--export_dir'),
        refused('export --version exists', 'export', [run, '--export_dir=export', '--version=1'],
                'exists'),
        refused('export --version=-1', 'export', [*exp, '--version=-1'], '--version'),
        refused('export --bn_batches=0', 'export', [*exp, '--bn_batches=0'], '--bn_batches'),
        refused('export --tflite=maybe', 'export', [*exp, '--tflite=maybe'], '--tflite'),
        refused('export --tflite, --version exists', 'export',
                [run, '--export_dir=export', '--version=1', '--tflite'], 'exists'),
        ok('export --tflite', 'export', [*exp, '--tflite'],
           all_checks(exists('out/1/decoder.tflite'), exists('out/1/encoder.tflite'))),
        refused('export a checkpoint of non-finite weights', 'export', exp, 'non-finite',
                prepare=nan_checkpoint),
        refused('export --checkpoint damaged', 'export',
                [*exp, '--checkpoint=run/checkpoints/ckpt-4'], 'ckpt-4',
                prepare=lambda f: truncate(newest_data(f))),
        ok('export after a killed export', 'export', [run, '--export_dir=export'],
           all_checks(exists('export/2/saved_model.pb'), lambda f, e: '' if not [
               n for n in os.listdir(os.path.join(f, 'export')) if n.startswith('.tmp')]
               else 'leftover kept'),
           prepare=lambda f: os.makedirs(os.path.join(f, 'export', f'.tmp-2-{dead_pid()}', 'variables'))),
    ]
    # sample
    out += [
        refused('sample without flags', 'sample', [], '--export_dir'),
        refused('sample missing export', 'sample', ['--export_dir=nope'], 'nope'),
        refused('sample --export_dir is a file', 'sample', ['--export_dir=file'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('sample a damaged SavedModel', 'sample', ['--export_dir=export'], 'cannot be loaded',
                prepare=lambda f: write(os.path.join(f, 'export', '1', 'saved_model.pb'), b'junk')),
        refused('sample a SavedModel that is not ours', 'sample', ['--export_dir=other'],
                'not a pga_tf export', prepare=_other_saved_model),
        refused('sample --out without extension', 'sample', ['--export_dir=export', '--out=grid'], '--out'),
        refused('sample --out is a folder', 'sample', ['--export_dir=export', '--out=dir.png'],
                '--out', prepare=lambda f: os.makedirs(os.path.join(f, 'dir.png'))),
        refused('sample --out under a file', 'sample', ['--export_dir=export', '--out=file/g.png'],
                '--out', prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('sample --num=0', 'sample', ['--export_dir=export', '--num=0'], '--num'),
        refused('sample --num=1000000', 'sample', ['--export_dir=export', '--num=1000000'], '--num'),
        refused('sample --version missing', 'sample', ['--export_dir=export', '--version=9'], '9'),
        refused('sample --mode=nope', 'sample', ['--export_dir=export', '--mode=nope'], '--mode'),
        refused('sample --interp_steps=1', 'sample', ['--export_dir=export', '--interp_steps=1'],
                '--interp_steps'),
        ok('sample', 'sample', ['--export_dir=export', '--out=g.png'], exists('g.png')),
        refused('sample --sampler=nope', 'sample', ['--export_dir=export', '--sampler=nope'], '--sampler'),
        refused('sample --sampler=gmm from an export without a mixture', 'sample',
                ['--export_dir=export', '--sampler=gmm'], "no 'sample_gmm' signature"),
        refused('sample --card from an export without a card', 'sample',
                ['--export_dir=export', '--card'], 'model_card.md'),
        ok('sample --mode=traverse', 'sample', ['--export_dir=export', '--mode=traverse', '--num=3',
                                                '--out=t.png'], exists('t.png')),
    ]
    # bench and study
    out += [
        refused('bench --arch=nope', 'bench', ['--arch=nope'], '--arch'),
        refused('bench --archs with an unknown one', 'bench', ['--archs=conv_mnist,nope'], '--archs'),
        refused('bench --models with an unknown one', 'bench', ['--models=vpga,nope'], '--models'),
        refused('bench --batch_size=0', 'bench', ['--batch_size=0'], '--batch_size'),
        refused('bench --steps=0', 'bench', ['--steps=0'], '--steps'),
        refused('bench --warmup=0', 'bench', ['--warmup=0'], '--warmup'),
        refused('bench --precision=nope', 'bench', ['--precision=nope'], '--precision'),
        refused('study --methods with an unknown one', 'study', ['--methods=vpga,nope'], '--methods'),
        refused('study --out_dir is a file', 'study', ['--out_dir=file', '--quick'], 'file',
                prepare=lambda f: write(os.path.join(f, 'file'), 'keep')),
        refused('study --seeds=0', 'study', ['--seeds=0'], '--seeds'),
    ]
    return out


def _data_files(folder):
    checkpoints = os.path.join(folder, 'run', 'checkpoints')
    return [os.path.join(checkpoints, n) for n in os.listdir(checkpoints) if '.data-' in n]


def hold_lock(folder):
    """Another trainer holds the run's lock while the case runs (released when this ends)."""
    fd = os.open(os.path.join(folder, 'run', '.lock'), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def evaluated(folder):
    subprocess.run([sys.executable, '-m', 'pga_tf.evaluate', '--run_dir=run', '--stats_dir=stats',
                    '--num_samples=100', '--repeats=1', '--real_samples=200'], cwd=folder,
                   capture_output=True, check=True)


def _with_stats(damage):
    def prepare(folder):
        if not stats_file(folder):
            evaluated(folder)
        damage(folder)
    return prepare


def _nan_stats(path):
    with np.load(path) as f:
        mu, sigma, n = f['mu'], f['sigma'], f['n']
    np.savez(path[:-4], mu=np.full_like(mu, np.nan), sigma=sigma, n=n)


def _wrong_dim_stats(path):
    np.savez(path[:-4], mu=np.zeros(5), sigma=np.eye(5), n=np.int64(10))


def _other_saved_model(folder):
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: {'y': x * 2}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, os.path.join(folder, 'other'), signatures={'other': module.f})


def tree(folder):
    """{relative path: digest} of every file under `folder` (the lock file aside)."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if name != '.lock':
                with open(path, 'rb') as f:
                    out[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return out


def run_case(case, material, workspace):
    folder = os.path.join(workspace, case.name.replace(' ', '_').replace('/', '_'))
    for name in ('run', 'export', 'stats', 'images'):
        shutil.copytree(os.path.join(material, name), os.path.join(folder, name))
    held = case.prepare(folder) if case.prepare else None
    before = tree(folder)
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    started = time.time()
    result = subprocess.run([sys.executable, '-m', f'pga_tf.{case.command}', *case.args], cwd=folder,
                            capture_output=True, text=True, env={**env, **case.env},
                            timeout=case.timeout)
    if isinstance(held, int):  # a lock file descriptor
        os.close(held)
    after = tree(folder)
    lines = result.stderr.splitlines()
    problems = []
    if 'Traceback' in result.stderr:
        problems.append('traceback: ' + (lines[-1] if lines else ''))
    if case.expect == 'refused':
        if result.returncode != 2:
            problems.append(f'exit status {result.returncode}, not 2')
        elif len(lines) != 1:
            problems.append(f'{len(lines)} lines on stderr, not 1')
        if case.says not in result.stderr:
            problems.append(f'does not name {case.says!r}')
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            problems.append(f'changed {sorted({p for p, _ in changed})[:4]}')
    else:
        if result.returncode != 0:
            problems.append(f'exit status {result.returncode}: {lines[-1] if lines else ""}')
        if case.says and case.says not in result.stderr:
            problems.append(f'does not say {case.says!r}')
        lost = [p for p in before if p.startswith(('run/checkpoints/ckpt', 'run/eval_', 'run/flags',
                                                    'export/1/')) and p not in after
                and p.replace('checkpoints/', 'checkpoints/damaged/') not in after
                and '.tmp-' not in p and not p.endswith('_temp')]  # leftovers go
        if lost:
            problems.append(f'lost {lost[:3]}')
        if case.check:
            problems.append(case.check(folder, result.stderr))
    shutil.rmtree(folder, ignore_errors=True)
    return case, [p for p in problems if p], time.time() - started


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from pga_tf.utils import device_info

    machine = device_info.describe()
    workspace = tempfile.mkdtemp(prefix='hostile_')
    start = time.time()
    material = make_material(os.path.join(workspace, 'material'))
    todo = [c for c in cases() if FLAGS.only in c.name]
    defects, refused, behaved = [], 0, 0
    with concurrent.futures.ThreadPoolExecutor(FLAGS.jobs) as pool:
        for case, problems, seconds in pool.map(lambda c: run_case(c, material, workspace), todo):
            status = 'DEFECT' if problems else ('refused' if case.expect == 'refused' else 'ok')
            print(f'{status:8s} {seconds:5.1f} s  {case.command:8s} {case.name}'
                  + (f': {"; ".join(problems)}' if problems else ''), flush=True)
            if problems:
                defects.append(case.name)
            elif case.expect == 'refused':
                refused += 1
            else:
                behaved += 1
    shutil.rmtree(workspace, ignore_errors=True)
    print(f'\n{len(todo)} cases tried: {refused + behaved} clean ({refused} refused with one line '
          f'and nothing written, {behaved} behaved as documented), {len(defects)} defective; '
          f'{machine}, {(time.time() - start) / 60:.1f} min')
    sys.exit(1 if defects else 0)


if __name__ == '__main__':
    app.run(main)

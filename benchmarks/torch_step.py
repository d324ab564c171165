"""The same training step in eager PyTorch, timed beside ours: the yardstick of issue 12.

  pip install torch==2.13.0      # not a dependency of pga_tf; only this benchmark imports it
  python benchmarks/torch_step.py                                # conv_mnist ae, vae, lpga, vpga
  python benchmarks/torch_step.py --archs=conv_64 --models=lpga,vpga --steps=5

For each architecture x method, at its paper preset (pga_tf's flags/ files: coefficients, lr,
batch norm, z_dim) after the warm-up, it times in separate processes:
  - this file's PyTorch step (eager, NCHW, torch's threads set to the CPU count): the same
    networks (5x5 stride-2 convolutions and transposed convolutions, leaky ReLU 0.2 / ReLU,
    batch norm where the preset has it, tanh), the same terms as `pga_tf.core.losses` with its
    passes but one (h' through the encoder with detached weights; without batch norm the prior's
    batch in calls of its own, the data's codes with their offset in one): the data's codes
    go through the decoder again, detached, where pga_tf's step reuses img_rec's decoder pass
    on a tape per loss (`losses.latent_maps`); one SGD optimiser
    (momentum 0.9) per network, the encoder's parameters
    updated by the gradient of the encoder's loss and the decoder's by the decoder's;
  - `python -m pga_tf.bench --json` with its defaults (float32, XLA off),
and prints both images/s and their ratio, naming the machine. A benchmark, not a test.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list('archs', ['conv_mnist'], 'conv_mnist, conv_32 or conv_64.')
flags.DEFINE_list('models', ['ae', 'vae', 'lpga', 'vpga'], 'ae, vae, lpga, vpga.')
flags.DEFINE_integer('batch_size', 64, 'Images per step.', lower_bound=1)
flags.DEFINE_integer('steps', 10, 'Timed steps (after 3 untimed).', lower_bound=1)
flags.DEFINE_integer('rounds', 3, 'Processes per side, alternating PyTorch and pga_tf; the '
                     'median of each side is reported (a side varied by up to 20 % between '
                     'processes on a 2-vCPU VM).', lower_bound=1)
flags.DEFINE_string('torch_only', '', 'The child process: time the PyTorch step of --archs[0] x '
                    '--models[0] at these preset settings (JSON) and print its JSON record.')
FLAGS = flags.FLAGS

IMAGE = {'conv_mnist': (28, 1), 'conv_32': (32, 3), 'conv_64': (64, 3)}


# The preset's settings the step needs; the parent reads them (pga_tf imports TensorFlow, which
# the PyTorch process is kept free of).
SETTINGS = ('bn', 'lr', 'z_dim', 'zn_rec', 'zh_rec', 'nll', 'vrec', 'vkld')


def _preset(arch, model):
    from pga_tf.training import cli_flags

    config = cli_flags.read_preset(cli_flags.PRESET_DATASET[arch], model)
    return {k: getattr(config, k) for k in SETTINGS}


def build(arch, z_dim, variational, bn, dim=64):
    """(encoder, decoder) as torch modules, the layers of `pga_tf.core.models`."""
    import torch
    from torch import nn

    size, channels = IMAGE[arch]
    conv = lambda i, o, norm: [nn.Conv2d(i, o, 5, 2, 2, bias=not norm)] + (
        [nn.BatchNorm2d(o, eps=1e-3, momentum=1e-3)] if norm else []) + [nn.LeakyReLU(0.2)]
    deconv = lambda i, o, norm, act=True: [nn.ConvTranspose2d(i, o, 5, 2, 2, 1, bias=not norm)] + (
        [nn.BatchNorm2d(o, eps=1e-3, momentum=1e-3)] if norm else []) + ([nn.ReLU()] if act else [])
    if arch == 'conv_mnist':
        enc = conv(channels, dim, False) + conv(dim, 2 * dim, bn) + [
            nn.Flatten(), nn.Linear(2 * dim * 7 * 7, 1024, bias=not bn)] + (
            [nn.BatchNorm1d(1024, eps=1e-3, momentum=1e-3)] if bn else []) + [nn.LeakyReLU(0.2)]
        features, side, top = 1024, 7, 2 * dim
        dec = [nn.Linear(z_dim, 1024), nn.ReLU(), nn.Linear(1024, top * side * side, bias=not bn)] + (
            [nn.BatchNorm1d(top * side * side, eps=1e-3, momentum=1e-3)] if bn else []) + [nn.ReLU()]
        widths = [top, dim]
    else:
        blocks = 3 if arch == 'conv_32' else 4
        enc, c = [], channels
        for i in range(blocks):
            enc += conv(c, dim * 2 ** i, bn and i >= blocks - 2 if arch == 'conv_64' else bn and i > 0)
            c = dim * 2 ** i
        enc += [nn.Flatten()]
        side, top = 4, c
        features = c * side * side
        dec = [nn.Linear(z_dim, top * side * side), nn.ReLU()]
        widths = [top // 2 ** i for i in range(blocks)]
    dec += [nn.Unflatten(1, (top, side, side))]
    for i in range(len(widths) - 1):
        dec += deconv(widths[i], widths[i + 1], bn and i < len(widths) - 2)
    dec += deconv(widths[-1], channels, False, act=False) + [nn.Tanh()]

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*enc)
            self.mu = nn.Linear(features, z_dim)
            self.log_sigma_sq = nn.Linear(features, z_dim) if variational else None
            if variational:
                nn.init.constant_(self.log_sigma_sq.bias, 2 * math.log(0.1))

        def forward(self, x):
            h = self.body(x)
            return (self.mu(h), self.log_sigma_sq(h)) if variational else (self.mu(h), None)

    encoder, decoder = Encoder(), nn.Sequential(*dec)
    x = torch.zeros(2, channels, size, size)
    assert decoder(encoder(x)[0]).shape == x.shape
    return encoder, decoder


def step_fn(model, encoder, decoder, config):
    """One two-gradient update of `model` (the terms of pga_tf.core.losses at `config`'s coefficients)."""
    import types

    import torch
    from torch.func import functional_call

    config = types.SimpleNamespace(**config)
    mse = lambda a, b: torch.mean((a - b) ** 2)
    bn = config.bn
    enc_params, dec_params = list(encoder.parameters()), list(decoder.parameters())
    opt_enc = torch.optim.SGD(enc_params, config.lr, momentum=0.9)
    opt_dec = torch.optim.SGD(dec_params, config.lr, momentum=0.9)

    def batched(fn, inputs):
        if bn:
            return [fn(v) for v in inputs]
        return list(torch.split(fn(torch.cat(inputs)), [len(v) for v in inputs]))

    def h(zs):
        return batched(lambda z: encoder(decoder(z))[0], zs)

    def frozen(u):
        weights = {k: v.detach() for k, v in encoder.named_parameters()}
        return functional_call(encoder, weights, (u,))[0]

    def losses(x, z_prior, eps, delta):
        z_mu, z_lss = encoder(x)
        if model in ('ae', 'vae'):
            z = z_mu if model == 'ae' else z_mu + torch.exp(0.5 * z_lss) * eps
            loss = mse(x, decoder(z))
            if model == 'vae':
                loss = loss + config.vkld * -torch.mean(0.5 * (1 + z_lss - z_mu ** 2 - torch.exp(z_lss)))
            return loss, loss
        data = z_mu.detach()
        img_rec = mse(x, decoder(z_mu))
        enc, dec = img_rec, img_rec
        if model == 'lpga':
            epsilon = 1e-2 * math.sqrt(data.shape[1])
            d = delta / delta.norm(dim=1, keepdim=True) * epsilon
            # As pga_tf.core.losses groups them: the prior alone, the data's codes with their offset.
            h_data, h_pert = h([data, data + d])
            log_det = torch.mean(torch.log(((h_pert - h_data) ** 2).sum(1) / epsilon ** 2)) / 2
            nll_enc = torch.mean(0.5 * (z_mu ** 2).sum(1) + 0.5 * data.shape[1] * math.log(2 * math.pi)) / data.shape[1]
            enc = enc + config.nll * nll_enc + (config.zn_rec * mse(z_prior, h([z_prior])[0]) if config.zn_rec else 0)
            enc = enc + (config.zh_rec * mse(data, h_data) if config.zh_rec else 0)
            dec = dec + config.nll * log_det
        else:  # vpga
            offset = torch.exp(0.5 * z_lss) * eps
            if config.zn_rec:
                enc = enc + config.zn_rec * mse(z_prior, h([z_prior])[0])
            u_data, u_off = batched(decoder, [data, data + offset])  # g once for h and h'
            if config.zh_rec:
                enc = enc + config.zh_rec * mse(data, encoder(u_data)[0])
            hp_data, hp_off = batched(frozen, [u_data, u_off])
            n = torch.sqrt(torch.mean(z_mu ** 2, 0)).detach()
            vrec = mse(hp_data / n, hp_off / n)
            kl = -torch.mean(0.5 * (1 + z_lss - z_mu ** 2 - torch.exp(z_lss)))
            enc = enc + config.vrec * vrec + config.vkld * kl
            dec = dec + config.vrec * vrec
        return enc, dec

    def step(x, noise):
        enc, dec = losses(x, *noise)
        g_enc = torch.autograd.grad(enc, enc_params, retain_graph=True, allow_unused=True)
        g_dec = torch.autograd.grad(dec, dec_params, allow_unused=True)
        for p, g in zip(enc_params + dec_params, g_enc + g_dec):
            p.grad = g
        opt_enc.step()
        opt_dec.step()
        return float(enc)

    return step


def time_torch(arch, model, config):
    import torch

    # device_info.usable_cpus(), without importing TensorFlow into the PyTorch process
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    encoder, decoder = build(arch, config['z_dim'], model in ('vae', 'vpga'), config['bn'])
    step = step_fn(model, encoder, decoder, config)
    size, channels = IMAGE[arch]
    x = torch.rand(FLAGS.batch_size, channels, size, size) * 2 - 1
    noise = [torch.randn(FLAGS.batch_size, config['z_dim']) for _ in range(3)]
    for _ in range(3):
        step(x, noise)
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        step(x, noise)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {'arch': arch, 'model': model, 'images_per_sec': FLAGS.batch_size / median,
            'torch': torch.__version__, 'threads': torch.get_num_threads()}


def _child(args):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'}
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f'{" ".join(args)} failed:\n{result.stderr[-2000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def _spread(values):
    return f'{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})'


def main(argv):
    del argv
    if FLAGS.torch_only:
        print(json.dumps(time_torch(FLAGS.archs[0], FLAGS.models[0], json.loads(FLAGS.torch_only))))
        return
    from pga_tf.utils import device_info

    print(f'machine: {device_info.describe()}; batch {FLAGS.batch_size}, float32, median of '
          f'{FLAGS.steps} steps in each of {FLAGS.rounds} processes per side, alternating; '
          'images/s as median (range)')
    print('| arch | model | PyTorch images/s | pga_tf images/s | pga_tf / PyTorch |')
    print('|---|---|---|---|---|', flush=True)
    for arch in FLAGS.archs:
        for model in FLAGS.models:
            common = [f'--batch_size={FLAGS.batch_size}', f'--steps={FLAGS.steps}']
            theirs, ours = [], []
            for _ in range(FLAGS.rounds):
                theirs.append(_child([__file__, f'--torch_only={json.dumps(_preset(arch, model))}',
                                      f'--archs={arch}', f'--models={model}', *common]))
                ours.append(_child(['-m', 'pga_tf.bench', f'--arch={arch}', f'--model={model}',
                                    '--json', *common]))
            torch_ips, ours_ips = ([r['images_per_sec'] for r in side] for side in (theirs, ours))
            print(f"| {arch} | {model} | {_spread(torch_ips)} (torch {theirs[0]['torch']}, "
                  f"{theirs[0]['threads']} threads) | {_spread(ours_ips)} | "
                  f"{statistics.median(ours_ips) / statistics.median(torch_ips):.2f}x |", flush=True)


if __name__ == '__main__':
    app.run(main)

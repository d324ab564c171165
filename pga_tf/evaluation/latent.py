"""PGA's latent diagnostics: how close the codes of data f(x) and of generated images f(g(z)) are
to the prior N(0, I), in the encoder's latent space where PGA matches the two distributions.

  data_fd, generated_fd   Fréchet distance of the codes' Gaussian fit to N(0, I), in closed
                          form: ||μ||² + tr(Σ) + d − 2 tr(Σ^½)
  zn_rec                  the latent reconstruction error of fresh prior samples,
                          mean (f(g(z)) − z)² (paper eq. 2, the `zn_rec` term)
  *_norm_p50/p90/p99      percentiles of the codes' norms; the prior's are about sqrt(d)

Cheap (no feature network): the evaluation reports them, and training logs them with
--eval_every, where a code scale far from the prior's shows trouble before it diverges.
"""
import numpy as np

from pga_tf.core import generator, losses

PERCENTILES = (50, 90, 99)
# A median code norm outside [1/4, 4] x the prior's is reported as a warning.
SCALE_BAND = 4.0


def frechet_to_standard_normal(codes):
    """Fréchet distance between the Gaussian fit of `codes` [N, d] and N(0, I_d), in float64."""
    codes = np.asarray(codes, np.float64)
    mu, sigma = codes.mean(0), np.atleast_2d(np.cov(codes, rowvar=False))
    eigenvalues = np.clip(np.linalg.eigvalsh(sigma), 0, None)  # Σ is symmetric PSD
    return float(mu @ mu + np.trace(sigma) + len(mu) - 2 * np.sum(np.sqrt(eigenvalues)))


def norm_percentiles(codes, prefix):
    norms = np.linalg.norm(np.asarray(codes, np.float64), axis=1)
    return {f'{prefix}_norm_p{q}': float(np.percentile(norms, q)) for q in PERCENTILES}


def diagnostics(encoder, decoder, held_out_batches, prior_batches):
    """The diagnostics of a `generator.prepare`d decoder, as a dict of floats.

    Args:
      held_out_batches: batches of held-out images in [-1, 1].
      prior_batches: batches of z ~ N(0, I) [B, z_dim].
    """
    data = np.concatenate([losses.encode(encoder, x, False)[0].numpy() for x in held_out_batches])
    z, generated = [], []
    for batch in prior_batches:
        z.append(np.asarray(batch))
        generated.append(losses.encode(encoder, generator.generate(decoder, batch), False)[0].numpy())
    z, generated = np.concatenate(z), np.concatenate(generated)
    return {'data_fd': frechet_to_standard_normal(data),
            'generated_fd': frechet_to_standard_normal(generated),
            'zn_rec': float(np.mean((generated.astype(np.float64) - z) ** 2)),
            **norm_percentiles(data, 'data'), **norm_percentiles(generated, 'generated'),
            **norm_percentiles(z, 'prior')}


def scale_warning(result):
    """A sentence when the data codes' median norm leaves the band around the prior's; ''."""
    ratio = result['data_norm_p50'] / result['prior_norm_p50']
    if 1 / SCALE_BAND <= ratio <= SCALE_BAND:
        return ''
    return (f'the codes of data have a median norm {ratio:.3g}x the prior\'s '
            f'({result["data_norm_p50"]:.3g} against {result["prior_norm_p50"]:.3g}): the '
            'latent matching is far from N(0, I)')

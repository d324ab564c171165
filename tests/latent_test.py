"""Latent diagnostics against SciPy and NumPy computations of their formulas."""
import numpy as np
import scipy.linalg
import tensorflow as tf

from pga_tf.evaluation import latent
import tiny_models as tm


def test_frechet_to_standard_normal_matches_the_general_formula():
    rng = np.random.RandomState(0)
    codes = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)) + 0.7
    mu, sigma = codes.mean(0), np.cov(codes, rowvar=False)
    expected = mu @ mu + np.trace(sigma + np.eye(5) - 2 * scipy.linalg.sqrtm(sigma).real)
    np.testing.assert_allclose(latent.frechet_to_standard_normal(codes), expected, rtol=1e-9)
    # Samples of the prior itself are close to 0.
    assert latent.frechet_to_standard_normal(rng.normal(size=(20000, 5))) < 0.01


def test_diagnostics_of_a_small_model():
    encoder, decoder, w = tm.build(False)
    x = np.random.RandomState(1).uniform(-1, 1, (40, tm.SIZE, tm.SIZE, 1)).astype(np.float32)
    z = np.random.RandomState(2).normal(size=(60, tm.Z_DIM)).astype(np.float32)
    result = latent.diagnostics(encoder, decoder, [x[:25], x[25:]], [tf.constant(z[:32]), tf.constant(z[32:])])
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    data_codes = tm.np_encode(w64, x.astype(np.float64))[0]
    generated = tm.np_h(w64, z.astype(np.float64))
    np.testing.assert_allclose(result['zn_rec'], np.mean((generated - z) ** 2), rtol=1e-4)
    np.testing.assert_allclose(result['data_fd'], latent.frechet_to_standard_normal(data_codes), rtol=1e-4)
    np.testing.assert_allclose(result['generated_norm_p90'],
                               np.percentile(np.linalg.norm(generated, axis=1), 90), rtol=1e-4)
    np.testing.assert_allclose(result['prior_norm_p50'], np.median(np.linalg.norm(z, axis=1)), rtol=1e-6)
    # The band is relative to the prior's median norm.
    assert latent.scale_warning({**result, 'data_norm_p50': result['prior_norm_p50']}) == ''
    assert '18' in latent.scale_warning({**result, 'data_norm_p50': 18 * result['prior_norm_p50']})

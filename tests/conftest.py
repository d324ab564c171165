"""Shared fixtures: quiet TensorFlow, and one short run exported for the export tests."""
import os

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

# Latent size of the shared short run.
Z_DIM = 8


@pytest.fixture(scope='session')
def exported(tmp_path_factory):
    """A short mnist_5k run, its restored models, and their export with the mixture of its
    codes (run/gmm_3.npz) (shared by the export, serving and sample tests)."""
    from pga_tf.serving import export_lib
    from pga_tf.training import run_folder, train_lib
    from pga_tf.evaluation import evaluator
    from train_lib_test import small_config

    root = tmp_path_factory.mktemp('export')
    run_dir = str(root / 'run')
    train_lib.train(small_config('mnist_5k', 'vpga', train_steps=3, width=0.25, z_dim=Z_DIM), run_dir)
    folder = run_folder.RunFolder(run_dir)
    run = folder.load()
    mixture = evaluator.fitted_mixture(folder, run)
    path = export_lib.export(run.encoder, run.decoder, str(root / 'exports' / 'pga_mnist'),
                             mixture=mixture)
    return root, run.encoder, run.decoder, path

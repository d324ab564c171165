"""The generator of a run as a versioned SavedModel that TF Serving loads as is.

Signatures (batch dimension None):
  serving_default  z float32 [B, z_dim]                  -> images uint8 [B, H, W, C]
  sample           num_samples int32 [], seed int64 []   -> images uint8, z float32
  decode           z float32 [B, z_dim]                  -> images float32 in [-1, 1]
  encode           images uint8 [B, H, W, C]             -> z float32 (z_mu)
  reconstruct      images uint8 [B, H, W, C]             -> images uint8
  interpolate      z_start, z_end float32 [B, z_dim], steps int32 [] -> images uint8 [B, steps, H, W, C]
  traverse         z float32 [z_dim], dims int32 [], steps int32 [] -> images uint8 [dims, steps, H, W, C],
                   dims int32 [dims]: the `dims` most used latent dimensions (by the training codes'
                   spread, from the mixture; in order without one), each moved over ±2 code std
  sample_gmm       num_samples int32 [], seed int64 []   -> images uint8, z float32: z from the
                   Gaussian mixture of the training codes (pga_tf.evaluation.gmm), held as graph constants;
                   present when the export was given a mixture

With `tflite`, the version folder also holds LiteRT (TFLite) models converted from two of these
signatures, for phones and browsers (TF Serving ignores them):
  decoder.tflite   serving_default: z float32 [B, z_dim] -> images uint8
  encoder.tflite   encode: images uint8 -> z float32
"""
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from pga_tf.core import generator, losses
from pga_tf.evaluation import gmm
from pga_tf.serving import model_card
from pga_tf.training import data
from pga_tf.utils import paths, tf_startup

MODELS_CONFIG = 'models.config'
# Written before being renamed into place: .tmp-<version>-<pid>/, models.config.tmp-<pid>.
_TMP = re.compile(r'(?:\.tmp-\d+|models\.config\.tmp)-(\d+)')
SIGNATURES = ('serving_default', 'sample', 'decode', 'encode', 'reconstruct', 'interpolate',
              'traverse')
# LiteRT models of a version, and the signature each is converted from.
TFLITE = {'decoder.tflite': 'serving_default', 'encoder.tflite': 'encode'}


class ExportError(Exception):
    """An export that cannot be written; nothing was left behind."""


class GeneratorModule(tf.Module):
    """Encoder and decoder in inference mode behind explicit signatures (and the codes'
    Gaussian mixture, when given, behind `sample_gmm`)."""

    def __init__(self, encoder, decoder, mixture=None):
        super().__init__(name='pga_generator')
        self.encoder, self.decoder = encoder, decoder
        # Keras 3 variables are not tf.Variables, so tf.Module does not see them; without their
        # backing variables tracked here the TF1-style loader (saved_model_cli run, TF Serving)
        # fails with "Could not find variable ..." (NOTES.md §7).
        self.model_variables = [v.value for v in encoder.variables + decoder.variables]
        z_dim = decoder.input_shape[-1]
        image = [None, *encoder.input_shape[1:]]
        z_spec = tf.TensorSpec([None, z_dim], tf.float32, name='z')
        images_spec = tf.TensorSpec(image, tf.uint8, name='images')

        def generate(z):
            return generator.generate(self.decoder, z)

        def encode_mean(images):
            return losses.encode(self.encoder, data.to_float(images), False)[0]

        self.serving_default = tf.function(
            lambda z: {'images': data.to_uint8(generate(z))}, input_signature=[z_spec])
        self.decode = tf.function(lambda z: {'images': generate(z)}, input_signature=[z_spec])
        self.encode = tf.function(lambda images: {'z': encode_mean(images)},
                                  input_signature=[images_spec])
        self.reconstruct = tf.function(
            lambda images: {'images': data.to_uint8(generate(encode_mean(images)))},
            input_signature=[images_spec])

        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name='num_samples'),
                                      tf.TensorSpec([], tf.int64, name='seed')])
        def sample(num_samples, seed):
            # Stateless: the same seed gives the same z on every server and call.
            z = tf.random.stateless_normal([num_samples, z_dim], seed=tf.stack([seed, 0]))
            return {'images': data.to_uint8(generate(z)), 'z': z}

        @tf.function(input_signature=[tf.TensorSpec([None, z_dim], tf.float32, name='z_start'),
                                      tf.TensorSpec([None, z_dim], tf.float32, name='z_end'),
                                      tf.TensorSpec([], tf.int32, name='steps')])
        def interpolate(z_start, z_end, steps):
            z = generator.interpolation_codes(z_start, z_end, steps)  # [B, steps, z_dim]
            images = data.to_uint8(generate(tf.reshape(z, [-1, z_dim])))
            return {'images': tf.reshape(images, tf.concat([[-1, steps], tf.shape(images)[1:]], 0))}

        code_std = tf.constant(gmm.code_std(mixture) if mixture is not None else [1.0] * z_dim,
                               tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([z_dim], tf.float32, name='z'),
                                      tf.TensorSpec([], tf.int32, name='dims'),
                                      tf.TensorSpec([], tf.int32, name='steps')])
        def traverse(z, dims, steps):
            chosen = generator.most_used_dimensions(code_std, dims)
            images = data.to_uint8(generate(generator.traversal_codes(z, chosen, code_std, steps)))
            shape = tf.concat([[-1, steps], tf.shape(images)[1:]], 0)
            return {'images': tf.reshape(images, shape), 'dims': tf.cast(chosen, tf.int32)}

        self.sample, self.interpolate, self.traverse = sample, interpolate, traverse
        self.has_mixture = mixture is not None
        if self.has_mixture:
            mixture_constants = gmm.constants(mixture)

            @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name='num_samples'),
                                          tf.TensorSpec([], tf.int64, name='seed')])
            def sample_gmm(num_samples, seed):
                z = gmm.draw(*mixture_constants, num_samples, seed)
                return {'images': data.to_uint8(generate(z)), 'z': z}

            self.sample_gmm = sample_gmm

    def signatures(self):
        names = SIGNATURES + (('sample_gmm',) if self.has_mixture else ())
        return {name: getattr(self, name) for name in names}


def versions(export_dir):
    """Sorted numbers of the version folders in `export_dir` (none if it does not exist)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(n) for n in os.listdir(export_dir) if re.fullmatch(r'\d+', n))


def next_version(export_dir):
    """1 + the largest version in `export_dir` (1 for a new one)."""
    return max(versions(export_dir), default=0) + 1


def models_config(name, base_path):
    """TF Serving's model config file (text protobuf) for one model."""
    return ('model_config_list {\n  config {\n'
            f"    name: '{name}'\n    base_path: '{base_path}'\n    model_platform: 'tensorflow'\n"
            '  }\n}\n')


def check_model_folder(export_dir):
    """Refuses an `export_dir` that is not, and cannot become, a folder of versions.

    Raises:
      ExportError, paths.PathError: it is a file, a version folder, a folder holding other
        things, or a place that cannot be written.
    """
    paths.output_dir('export_dir', export_dir)
    if os.path.isfile(os.path.join(export_dir, 'saved_model.pb')):
        raise ExportError(f'--export_dir={export_dir} is a SavedModel version folder; pass the '
                          'model folder that holds the versions')
    if os.path.isdir(export_dir):
        other = sorted(n for n in os.listdir(export_dir)
                       if not (re.fullmatch(r'\d+', n) or n == MODELS_CONFIG or _TMP.fullmatch(n)))
        if other:
            raise ExportError(f'--export_dir={export_dir} holds {other[0]}, not only SavedModel '
                              'versions; pass a new folder or a model folder')


def check_new_version(export_dir, version):
    """The path of version `version` of `export_dir`.

    Raises:
      ExportError: it exists (versions are never overwritten).
    """
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f'{final} exists; versions are never overwritten (omit --version for the next)')
    return final


def _remove_leftovers(export_dir):
    """Temporary folders of exports whose process is gone (killed mid-write)."""
    for name in os.listdir(export_dir):
        match = _TMP.fullmatch(name)
        path = os.path.join(export_dir, name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def float32_twin(model):
    """`model` computing in float32: itself, or a copy with its weights for a mixed-precision
    model (LiteRT has no kernels for the bfloat16 or float16 ops of a mixed-precision graph)."""
    if model.dtype_policy.name == 'float32':
        return model
    twin = keras.models.clone_model(model, clone_function=lambda layer: layer.__class__.from_config(
        {**layer.get_config(), 'dtype': 'float32'}))
    twin.set_weights(model.get_weights())
    return twin


def write_tflite(encoder, decoder, folder, saved_model_dir):
    """Writes `TFLITE`'s LiteRT models into `folder` (float32, batch dimension dynamic),
    converted from `saved_model_dir` (the export of `encoder` and `decoder`), or for
    mixed-precision networks from an export of their float32 twins."""
    twins = float32_twin(encoder), float32_twin(decoder)
    with tempfile.TemporaryDirectory() as tmp:
        if twins != (encoder, decoder):
            module = GeneratorModule(*twins)
            saved_model_dir = os.path.join(tmp, 'float32')
            tf.saved_model.save(module, saved_model_dir, signatures=module.signatures())
        for name, signature in TFLITE.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, [signature])
            with tf_startup.native_stderr_filtered(tf_startup.CONVERTER_NOISE):
                flatbuffer = converter.convert()
            with open(os.path.join(folder, name), 'wb') as f:
                f.write(flatbuffer)


def export(encoder, decoder, export_dir, version=None, mixture=None, card=None, tflite=False):
    """Writes `<export_dir>/<version>/` atomically, and `<export_dir>/models.config`; with a
    `gmm.GaussianMixture` of the codes, the `sample_gmm` signature too; with a `card`
    (`model_card.build` without its signatures), the model card in the version folder; with
    `tflite`, the LiteRT models of `TFLITE` in it.

    The SavedModel is written to a temporary folder beside the version and renamed into place
    only when complete: a server polling `export_dir` never sees a half-written version, and a
    failed export leaves nothing behind (a killed one is cleaned up by the next export).

    Returns:
      the path of the version folder.

    Raises:
      ExportError: the version exists already, or `export_dir` cannot hold versions.
    """
    check_model_folder(export_dir)
    version = version or next_version(export_dir)
    final = check_new_version(export_dir, version)
    os.makedirs(export_dir, exist_ok=True)
    _remove_leftovers(export_dir)
    tmp = os.path.join(export_dir, f'.tmp-{version}-{os.getpid()}')
    try:
        module = GeneratorModule(encoder, decoder, mixture)
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        if tflite:
            write_tflite(encoder, decoder, tmp, tmp)
        if card is not None:
            model_card.write({**card, 'signatures': sorted(module.signatures()),
                              'litert': dict(TFLITE) if tflite else {}}, tmp)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    name = os.path.basename(os.path.normpath(export_dir))
    paths.write_atomic(os.path.join(export_dir, MODELS_CONFIG), models_config(name, f'/models/{name}'))
    return final

"""Checks of the paths a command will write, made before it does any work.

Each refusal is a `PathError` naming the flag, so the command ends with one line and nothing
written: a folder that is a file, a file that is a folder, a name without the right extension,
a place that cannot be created or written.
"""
import os

from pga_tf.training.config import ConfigError


class PathError(ConfigError):
    """A path given on the command line that cannot be written as asked."""


def _writable_parent(flag, path):
    """Refuses `path` unless its nearest existing ancestor is a writable folder."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise PathError(f'--{flag}={path} cannot be created: {existing} is a file')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathError(f'--{flag}={path} cannot be created: {existing} is not writable')


def output_dir(flag, path):
    """`path` as a folder that the command may create and write into."""
    if not path:
        raise PathError(f'--{flag} is empty; give a folder')
    if os.path.exists(path) and not os.path.isdir(path):
        raise PathError(f'--{flag}={path} is a file, not a folder')
    _writable_parent(flag, path)
    return path


def output_file(flag, path, suffix):
    """`path` as a `suffix` file (e.g. '.png') that the command may create or replace."""
    if not path or not path.lower().endswith(suffix) or not os.path.basename(path)[:-len(suffix)]:
        raise PathError(f'--{flag}={path!r} must be a file name ending in {suffix}')
    if os.path.isdir(path):
        raise PathError(f'--{flag}={path} is a folder, not a {suffix} file')
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PathError(f'--{flag}={path} is not writable')
    _writable_parent(flag, os.path.dirname(path) or '.')
    return path


def inside(path, folder):
    """Whether `path` is `folder` or lies under it (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def write_atomic(path, text):
    """Writes `path` whole or not at all (a kill never leaves half a file)."""
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)

"""Errors a user can cause and fix.

Every exception derived from `AudiolmError` is a *user* error: the CLI prints its message as
one line on stderr and exits with code 2 (no traceback unless `--verbose`). Anything else that
escapes is a bug in audiolm and keeps its traceback.
"""


class AudiolmError(Exception):
    """Base class for errors caused by input the user can fix (files, configs, arguments)."""


class AudioError(AudiolmError):
    """An audio file that cannot be read or written, or samples that are not valid audio."""


class ConfigError(AudiolmError):
    """A configuration (JSON or dataclass) with unknown, missing or invalid fields."""


class CheckpointError(AudiolmError):
    """A checkpoint directory that is missing, of the wrong kind or version, or mismatched."""

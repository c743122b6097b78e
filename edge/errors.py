"""Exception hierarchy shared by every fer-edge package.

Every error a user can cause (bad config, bad model, bad data, unreachable camera) is a
:class:`FerEdgeError` with a message that names the problem. Command-line entry points catch
this base class, print the message and exit with :attr:`FerEdgeError.exit_code`; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class FerEdgeError(Exception):
    """Base class of every expected, user-facing fer-edge error."""

    #: Process exit code a CLI uses when this error ends a command.
    exit_code: int = 2


class ConfigError(FerEdgeError):
    """A configuration file, key or value is invalid."""


class DataError(FerEdgeError):
    """A dataset file is missing, malformed or has an empty split."""


class ModelError(FerEdgeError):
    """A model file cannot be read, has no usable metadata, or is not a face classifier."""


class SourceError(FerEdgeError):
    """A camera, stream or file source cannot be opened or stopped delivering frames."""


class DetectorError(FerEdgeError):
    """A face detector cannot be loaded (missing cascade or ONNX file)."""


class PublishError(FerEdgeError):
    """An event sink cannot be set up (bad broker URL, unreadable credentials)."""


class ParityError(FerEdgeError):
    """A converted model lost more accuracy than allowed against its float original."""

    exit_code = 3

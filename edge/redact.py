"""The one secret masker: what counts as a secret, and how it is hidden before it is shown.

Secrets reach fer-edge in two shapes, and both are hidden here before any log line, error
message, ``stats`` payload or ``fer-edge model-info`` output can carry them:

- **credentials inside a URL** (``mqtts://user:password@broker``, ``rtsp://admin:pw@cam/s``,
  or a GStreamer pipeline with such a URL in it): :func:`mask_url` replaces the whole
  ``userinfo`` with ``***``. The user name goes too: a camera or API token is often passed as
  the user name alone (``https://TOKEN@host``), and telling a user name from a token is not
  possible from the text;
- **values under a secret-looking key** (``password``, ``hub_token``, ``db_secret``...):
  :func:`redact_secrets` replaces them with ``***`` in a nested dict/list.

Before this module the MQTT URL masker kept the user name, the camera one did not, and the
key list was imported from a private name of ``edge.config``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "SECRET_KEYS", "is_secret_key", "mask_url", "redact_secrets"]

#: What a hidden secret is shown as.
MASK = "***"

#: Substrings that make a key secret-looking (case-insensitive): ``mqtt_password``,
#: ``hub_token`` and ``private_key`` all match.
SECRET_KEYS = ("password", "secret", "token", "private_key")

# scheme://userinfo@ : the userinfo runs to the LAST "@" before the host's "/" (or the end of
# the URL at whitespace), because passwords with an unencoded "@" are common in hand-written
# URLs and stopping at the first "@" would leak the rest of the password.
_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s]*@", re.IGNORECASE)


def is_secret_key(key: object) -> bool:
    """Whether a config or metadata key names a secret (see :data:`SECRET_KEYS`)."""
    k = str(key).lower()
    return any(s in k for s in SECRET_KEYS)


def mask_url(text: str) -> str:
    """Replace the ``user:password@`` part of every URL in ``text`` with ``***@``.

    ``text`` may be a URL or a longer string holding URLs (a GStreamer pipeline); anything
    without credentials is returned unchanged.

    Examples:
        >>> mask_url("mqtts://cam:p4ss@broker:8883")
        'mqtts://***@broker:8883'
        >>> mask_url("mqtt://broker:1883")
        'mqtt://broker:1883'
    """
    return _USERINFO_RE.sub(rf"\1{MASK}@", text)


def redact_secrets(data: Any) -> Any:
    """A copy of a nested dict/list with every non-empty secret-keyed value shown as ``***``.

    Strings elsewhere are URL-masked too (:func:`mask_url`), so a ``url`` value does not carry
    its password past the key check.
    """
    if isinstance(data, dict):
        return {k: (MASK if is_secret_key(k) and v else redact_secrets(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_secrets(v) for v in data]
    if isinstance(data, str):
        return mask_url(data)
    return data

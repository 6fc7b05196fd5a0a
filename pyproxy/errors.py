"""The one exception tree of pyproxy, raised identically by the native and the pure kernels.

Every error pyproxy raises on purpose derives from :class:`PyproxyError`. The native module
imports the classes below by name (``pyo3::import_exception!``), so both twins raise the same
class with the same message, ``kind`` and ``offset``; tests compare ``(type, kind, offset, str)``.
"""

from __future__ import annotations

__all__ = [
    "PyproxyError",
    "DtabError",
    "PathError",
    "NamingError",
    "MaxDepthError",
    "UnknownNamerError",
    "NamerError",
    "ConfigError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
]


class PyproxyError(Exception):
    """Root of every error pyproxy raises on purpose."""


class DtabError(PyproxyError, ValueError):
    """A path, prefix, name tree, dentry or dtab that does not parse.

    The message is exactly Finagle's ``<expected> expected but <found> found at '<display>'``, where
    display is the input with the offending character in brackets (``/foo/[b]ar``) or ``[]`` at the end.

    Attributes:
        offset: index (in characters) of the offending character; ``len(input)`` at end of input.
        expected: what the parser wanted there (``'/'``, ``label char``, ``simple``, ...).
        kind: always ``"syntax"``.
    """

    kind = "syntax"

    def __init__(self, message: str, offset: int = -1, expected: str = "") -> None:
        super().__init__(message)
        self.offset = offset
        self.expected = expected


class PathError(PyproxyError, ValueError):
    """A path built from an invalid element (Finagle: ``requirement failed``)."""

    kind = "requirement"

    def __init__(self, message: str = "requirement failed") -> None:
        super().__init__(message)


class NamingError(PyproxyError):
    """Binding or delegating a name failed (not a negative answer: an error)."""


class MaxDepthError(NamingError):
    """Delegation followed more rewrites than the recursion limit allows (a dtab loop)."""


class UnknownNamerError(NamingError):
    """A ``/$/<class>`` path names a system namer that does not exist.

    Attributes:
        class_name: the unknown class (Finagle reports ``ClassNotFoundException: <class_name>``).
    """

    def __init__(self, message: str, class_name: str = "") -> None:
        super().__init__(message)
        self.class_name = class_name


class NamerError(NamingError):
    """A namer failed while looking a name up."""


class NamePending(NamingError):
    """A namer does not know the answer yet (its first look at a service is on its way): binding
    cannot decide now. ``ready`` is what the caller may wait on (its ``wait()``, a coroutine, returns
    once the namer knows); binding is then tried again, within the router's ``bindingTimeoutMs``
    (Finagle's pending ``Activity``)."""

    def __init__(self, message: str, ready: object) -> None:
        super().__init__(message)
        self.ready = ready


class ListenError(PyproxyError, OSError):
    """A listener could not be opened: the message names its config key and address."""


class ConfigError(PyproxyError, ValueError):
    """A configuration file that is not valid; the message starts with the key path (``$.routers[0]...``)."""


class ProtocolError(PyproxyError):
    """An HTTP/1.1 message that breaks the protocol; the connection it came on is unusable.

    Attributes:
        status: the HTTP status a server answers before closing: 400, 413, 414, 431, 501 or 505
            for a request, 502 for a response from upstream.
        kind: a stable short code (``"bare-lf"``, ``"cl-and-te"``, ``"missing-host"``, ...; the
            parsers' table is in ``pyproxy/_pure/h1_fields.py``; ``"bad-chunk-terminator"`` is the
            codec's, for chunk data not followed by CRLF), for metrics and tests.
        offset: the byte offset in the parsed buffer where the problem is (-1: unknown).
    """

    def __init__(self, message: str, status: int = 400, kind: str = "", offset: int = -1) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.offset = offset


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid (raised by the head and chunk parsers)."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something invalid (a bug or a bad value on our side)."""

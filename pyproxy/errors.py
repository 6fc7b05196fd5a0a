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


class ConfigError(PyproxyError, ValueError):
    """A configuration file that is not valid; the message starts with the key path (``$.routers[0]...``)."""

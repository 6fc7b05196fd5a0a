"""pyproxy: a Linkerd-1.x-compatible service-mesh node proxy on trio with a Rust core.

``IMPL`` says which kernels are in use (``native`` or ``pure``); see :mod:`pyproxy._impl`.
"""

from ._impl import IMPL as IMPL
from ._version import __version__ as __version__

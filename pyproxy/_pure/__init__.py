"""Pure-Python kernels: the specification that ``native/src`` mirrors, and the fallback without a build.

Exactly the names the native module exports (a test checks it); only ``pyproxy._impl`` imports this.
"""

from .._version import __version__ as __version__
from .balance import Balancer as Balancer
from .h1 import parse_chunk_line as parse_chunk_line
from .h1 import parse_request_head as parse_request_head
from .h1 import parse_response_head as parse_response_head
from .h1 import parse_trailers as parse_trailers
from .index import DtabIndex as DtabIndex
from .parse import read_dentry as read_dentry
from .parse import read_dtab as read_dtab
from .parse import read_path as read_path
from .parse import read_prefix as read_prefix
from .parse import read_tree as read_tree

__all__ = [
    "Balancer",
    "DtabIndex",
    "parse_chunk_line",
    "parse_request_head",
    "parse_response_head",
    "parse_trailers",
    "read_dentry",
    "read_dtab",
    "read_path",
    "read_prefix",
    "read_tree",
]

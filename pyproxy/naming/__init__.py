"""Finagle/Linkerd naming: paths, name trees, dtabs, binding and delegation (sans-IO, no trio).

Public names are re-exported here; each lives in the module that owns it:
``path`` (Path), ``tree`` (NameTree and its algebra), ``dtab`` (Prefix, Dentry, Dtab),
``name`` (Bound and address sets), ``namer`` (the Namer interface), ``system`` (the ``/$/`` namers),
``binding`` (bind and the interpreters), ``delegation`` (delegation trees).

May import: ``errors`` and ``_impl`` (the dtab grammar and lookup kernels). Never trio, sockets or
``config``: host names of ``/$/inet`` are resolved by whoever runs the proxy (``discovery.dns``).
"""

from .binding import ConfiguredNamersInterpreter as ConfiguredNamersInterpreter
from .binding import DefaultInterpreter as DefaultInterpreter
from .binding import bind as bind
from .delegation import DelegateTree as DelegateTree
from .delegation import delegate as delegate
from .dtab import Dentry as Dentry
from .dtab import Dtab as Dtab
from .dtab import Prefix as Prefix
from .name import Address as Address
from .name import AddrBound as AddrBound
from .name import AddrFailed as AddrFailed
from .name import AddrVar as AddrVar
from .name import Bound as Bound
from .namer import Namer as Namer
from .path import Path as Path
from .system import SystemNamer as SystemNamer
from .tree import Alt as Alt
from .tree import Empty as Empty
from .tree import Fail as Fail
from .tree import Leaf as Leaf
from .tree import NameTree as NameTree
from .tree import Neg as Neg
from .tree import Union as Union
from .tree import Weighted as Weighted
from .tree import evaluate as evaluate
from .tree import simplify as simplify

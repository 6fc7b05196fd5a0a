"""Service discovery plugins (Linkerd ``namers``): each answers names under ``/#/<prefix>``."""

from .fs import FsNamer as FsNamer

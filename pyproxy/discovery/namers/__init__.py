"""Namers (Linkerd ``namers``): each resolves the names under ``/#/<prefix>`` and keeps their address sets current."""

from .fs import FsNamer as FsNamer

"""Interpreters: how a router's logical names are bound (the ``interpreter`` block of a router)."""

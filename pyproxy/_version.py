"""The package version: one literal, checked against Cargo.toml and the native module."""

__version__ = "0.1.0"

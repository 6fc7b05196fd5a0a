"""TLS objects: server TLS (``servers[].tls``, ``admin.tls``) and client TLS (``client.tls``, namer and
interpreter ``tls``), with Linkerd's cross-key rules (Linkerd 1.x sections 1.2.3 and 3.6).

The pre-1.0 client shapes (``tls: {kind: io.l5d.noValidation | io.l5d.static | io.l5d.boundPath}``)
are rewritten before typing by :mod:`.legacy`; these structs only know the 1.x flat shape.
"""

from __future__ import annotations

from typing import Annotated, Optional, Tuple

from msgspec import Meta

from .base import Base, invalid

__all__ = ["ServerTls", "ClientAuth", "ClientTls"]

FilePath = Annotated[str, Meta(min_length=1)]


class ServerTls(Base, kw_only=True):
    """Terminate TLS on a listener. ``keyPath`` must be PKCS#8 (checked when the server starts)."""

    FAMILY = "tls"

    cert_path: FilePath
    key_path: FilePath
    intermediate_certs_path: Optional[FilePath] = None
    ca_cert_path: Optional[FilePath] = None  # verifies client certificates
    require_client_auth: bool = False
    protocols: Tuple[str, ...] = ()  # empty: the TLS library's default
    ciphers: Tuple[str, ...] = ()  # undocumented in Linkerd, but read by its code


class ClientAuth(Base, kw_only=True):
    """The client certificate a client presents (mTLS)."""

    cert_path: FilePath
    key_path: FilePath
    intermediate_certs_path: Optional[FilePath] = None


class ClientTls(Base, kw_only=True):
    """Originate TLS to a destination.

    ``commonName`` is also sent as SNI and may hold ``{var}`` captures of a static client prefix.
    """

    FAMILY = "tls"

    enabled: bool = True  # false exempts a prefix in a static client config
    common_name: Optional[str] = None
    disable_validation: bool = False
    trust_certs_bundle: Optional[FilePath] = None
    trust_certs: Tuple[FilePath, ...] = ()  # deprecated list form of the bundle
    client_auth: Optional[ClientAuth] = None
    protocols: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The three rules Linkerd's TlsClientConfig enforces when it builds the client.
        if not self.enabled:
            return
        if self.common_name is None and not self.disable_validation:
            raise invalid("commonName", "required unless disableValidation is true")
        if self.trust_certs and self.trust_certs_bundle is not None:
            raise invalid("trustCertsBundle", "cannot be combined with trustCerts")
        if self.disable_validation and self.client_auth is not None:
            raise invalid("clientAuth", "cannot be combined with disableValidation: true")

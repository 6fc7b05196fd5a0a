"""Service discovery, in three layers: namers resolve, interpreters bind, transformers rewrite.

* ``namers``: a namer turns a path under its prefix (``/#/io.l5d.fs/world``) into a name tree of
  bound names whose address sets it keeps up to date (``io.l5d.fs``);
* ``interpreters``: an interpreter binds a router's logical names, with the configured namers or
  from elsewhere (``io.l5d.fs``: the router's dtab from a file);
* transformers (to come) rewrite the addresses a bound name resolves to.

May import: ``errors``, ``_impl``, ``naming``, trio. Never ``config``, ``datapath``, ``routing``,
``admin`` or ``runtime``: each piece is built by the runtime from its config block's values.
"""

"""The running process: from a config file to a serving proxy, and the command line.

Owns building and running everything one config describes (``app``), the read-only view of the
running proxy that the admin server and telemetry read (``view``), several worker processes
(``workers``), the command line (``cli``), the embedded quick start (``demo``), logging (``logs``)
and the process's memory footprint (``footprint``).

May import everything. Nothing imports it but ``pyproxy.__main__``.
"""

"""The studio: a local web UI for the workspace's compute targets, runs, logs and metrics
(``targets studio``, extra ``compute-targets[studio]``).

- :mod:`targets.studio.server` binds 127.0.0.1, prints the URL with its access token and
  serves;
- :mod:`targets.studio.app` assembles the page modules (:mod:`targets.studio.pages`)
  behind :mod:`targets.studio.security` (access token, CSRF token, Origin and Host
  checks);
- the page modules only parse a request, call the library (the same operations as the
  CLI and the Python API) and render a template (:mod:`targets.studio.web`).
"""

from __future__ import annotations

__all__: list[str] = []

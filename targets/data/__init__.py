"""Data for v2 jobs beyond local files: cloud storage through fsspec (adlfs, s3fs, gcsfs,
optional extras), data assets registered in the workspace, ``mltable`` folders, and
outputs uploaded after the run.

- :mod:`targets.data.uris`: which URIs are cloud storage, and their file systems with
  the user's credentials.
- :mod:`targets.data.fetch`: cached local copies of cloud files and folders.
- :mod:`targets.data.inputs`: a job input's ``path`` -> the local file or folder to ship.
- :mod:`targets.data.mltable`: a self-contained MLTable folder.
- :mod:`targets.data.assets`: ``targets data create/list/show``.
- :mod:`targets.data.upload`: outputs with a cloud ``path``, uploaded after the run.

Importing this package imports no storage SDK; each is imported when a URI needs it.
"""

from __future__ import annotations

__all__: list[str] = []

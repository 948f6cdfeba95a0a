"""The studio's pages, one module per area; each has a ``routes`` list (see
:data:`targets.studio.app.PAGES`)."""

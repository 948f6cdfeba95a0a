"""Node providers shipped with targets: docker, azure, ssh."""

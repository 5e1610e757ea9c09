"""The ``occ`` command line: the top layer."""

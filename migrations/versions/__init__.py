"""The core's revisions, ``NNNN_slug.py``, applied in sequence (branch ``botcore``)."""

"""The console scripts: ``botcore-db``, ``botcore-setup`` and ``botcore-plugin``."""

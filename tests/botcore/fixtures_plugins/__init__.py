"""Plugins for the core's tests: a Reloader or Bot pointed at this package loads these
instead of the bundled ones."""

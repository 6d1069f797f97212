"""Sources for the core's tests: a Reloader or Bot pointed at this package finds these."""

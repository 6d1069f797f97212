"""The bundled plugins: one module (or package) per feature; core processors are in core.py."""

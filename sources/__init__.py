"""The bundled sources: one module (or package) per chat network or front door."""

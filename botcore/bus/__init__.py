"""The event bus: the catalogue of typed events (name, description, JSON Schema of the
payload, optional parent) that every publish path validates against."""

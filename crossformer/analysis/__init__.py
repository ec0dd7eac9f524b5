"""Numbers derived from a trace or a layout, for people (NumPy and plain Python only, no UI)."""

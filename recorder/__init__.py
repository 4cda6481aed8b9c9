"""Captures of a call and where they are kept: the object store, screenshots and recordings."""

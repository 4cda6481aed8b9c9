"""Composition root: settings, the app factory, REST handlers, auth, pages and the CLI."""

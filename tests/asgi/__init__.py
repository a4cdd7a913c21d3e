"""Tests for runtime.http.asgi (a package, so its helper module can be imported)."""

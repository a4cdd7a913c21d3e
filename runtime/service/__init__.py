"""runtime.service."""

"""runtime.sync."""

"""runtime.io."""

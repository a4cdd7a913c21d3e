"""runtime.metrics."""

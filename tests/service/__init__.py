"""Tests for runtime.service (a package, so its test modules' names cannot clash with others)."""

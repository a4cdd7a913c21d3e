"""Tests for runtime.sync (a package, so its test modules' names cannot clash with others)."""

"""Benchmarks: each script prints its numbers next to a ceiling measured in the same run."""

"""Benchmarks that print figures (``python -m controller.bench.<name>``); never unit tests."""

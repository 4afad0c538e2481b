"""Async venue adapters: they parse at the edge and speak only domain values to the runner."""

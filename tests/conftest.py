"""Shared fixtures. Tests never touch the network and never sleep for a fixed time."""

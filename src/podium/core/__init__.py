"""Foundations every other module may import: errors, registries, atomic writes, console and progress."""

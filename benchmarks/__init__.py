"""minidl against PyTorch, each engine in its own process: ``python -m benchmarks --help``.

Importing this package imports neither engine (workers load exactly one, see ``engines.py``).
"""

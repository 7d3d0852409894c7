"""Performance benchmarks: one runnable module per area (``bench_*.py``, each with ``main(argv) -> dict``).

``python -m comfygen.evals.perf`` (or ``comfygen bench``) runs them all and prints one table.
"""

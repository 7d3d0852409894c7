"""Performance benchmarks: runnable modules, each with ``main(argv=None) -> dict``."""

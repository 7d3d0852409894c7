"""``python -m comfygen.evals.perf``: run every benchmark and print one table."""

from .runner import main

if __name__ == "__main__":  # pragma: no cover
    main()

"""The eval harness (prompt sets, strategies, runner, metrics, reports) and performance benchmarks (``perf/``)."""

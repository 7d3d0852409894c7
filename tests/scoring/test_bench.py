"""The scoring benchmark runs and returns its figures (smoke run, not a timing test)."""

from __future__ import annotations


def test_bench_scoring_quick(capsys):
    from comfygen.evals.perf.bench_scoring import main

    out = main(["--quick", "--scorers", "clipscore", "--threads", "1"])
    row = out["scorers"]["clipscore"]
    assert row["batched_img_s"] > 0 and row["one_at_a_time_img_s"] > 0 and row["params"] > 0
    assert out["command"].startswith("python -m comfygen.evals.perf.bench_scoring")
    assert "command:" in capsys.readouterr().out

"""The report: JSON/CSV numbers recomputed from samples, HTML holding them, self-contained."""

from __future__ import annotations

import csv
import json
import re

import pytest
from PIL import Image

from comfygen.evals.metrics import Sample
from comfygen.evals.report import build_report


@pytest.fixture
def run_dir(tmp_path):
    samples = []
    for k, st in enumerate(["base", "ft"]):
        for i in range(4):
            path = tmp_path / f"{st}{i}.png"
            Image.new("RGB", (32, 32), (40 * i, 60 * k, 90)).save(path)
            samples.append(Sample(strategy=st, prompt_id=f"p{i}", prompt=f"prompt <{i}>", category=["single_object", "counting"][i % 2],
                                  seed=7, flow_id=f"{st}-flow{i % (k + 1)}", run_id=f"r{st}{i}", image=str(path),
                                  scores={"hps": 0.2 + 0.1 * k * (i != 0), "ir": float(i)}, gpu_seconds=1.0 + k,
                                  geneval_correct=(i + k) % 2 == 0))
    samples.append(Sample(strategy="ft", prompt_id="p9", prompt="bad", category="counting", seed=7, error="ComfyUIError: x"))
    (tmp_path / "samples.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in samples))
    (tmp_path / "run.json").write_text(json.dumps({"name": "t", "strategies": ["base", "ft"], "heldout": "hps",
                                                   "baseline": "base", "prompt_set": "x"}))
    return tmp_path


def test_report_numbers_and_html(run_dir):
    path = build_report(run_dir, n_boot=200)
    res = json.loads((run_dir / "results.json").read_text())
    wins = {(w["a"], w["b"]): w for w in res["win_rates"]}
    # ft beats base on p1..p3, ties on p0 -> (3 + 0.5) / 4
    assert wins[("ft", "base")]["win_rate"] == pytest.approx(0.875)
    assert wins[("base", "ft")]["win_rate"] == pytest.approx(0.125)
    assert res["failures"] == {"base": 0, "ft": 1}
    div = {d["strategy"]: d["unique_flows"] for d in res["diversity"]}
    assert div == {"base": 1, "ft": 2}
    gen = res["geneval"]["table"]
    assert gen["base"]["Overall"] == pytest.approx(0.5)
    html = path.read_text()
    assert "0.88" in html and "0.12" in html  # the win-rate matrix shows the numbers
    assert "prompt &lt;1&gt;" in html  # prompts are escaped
    assert html.count("data:image/") == 8  # every image inline
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no external assets
    assert "<svg" in html
    with open(run_dir / "win_rates.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["a"] for r in rows} == {"base", "ft"}
    assert (run_dir / "samples.csv").read_text().count("\n") == 10  # header + 9 samples


def test_later_sample_lines_replace_earlier_ones(run_dir):
    s = Sample(strategy="base", prompt_id="p0", prompt="prompt <0>", category="single_object", seed=7, flow_id="base-flow0",
               scores={"hps": 0.9, "ir": 0.0})
    with open(run_dir / "samples.jsonl", "a") as f:
        f.write(s.model_dump_json() + "\n")
    build_report(run_dir, n_boot=50)
    res = json.loads((run_dir / "results.json").read_text())
    wins = {(w["a"], w["b"]): w for w in res["win_rates"]}
    assert wins[("base", "ft")]["wins"] == 1  # p0 now goes to base


def test_scoring_skips_images_that_are_gone(tmp_path):
    from types import SimpleNamespace

    from comfygen.evals.scoring import score_samples

    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    samples = [Sample(strategy="a", prompt_id="p0", prompt="x", image=str(img)),
               Sample(strategy="a", prompt_id="p1", prompt="y", image=str(tmp_path / "gone.png"))]

    class Const:
        def score(self, images, prompts):
            import torch
            return torch.ones(len(images))

    written = []
    cfg = SimpleNamespace(scorers=["c"], tiny_scorers=True, geneval=None)
    n = score_samples(samples, cfg, {}, settings=None, store=None, write=written.append, scorer_factory=lambda n: Const())
    assert n == 1 and written[0].prompt_id == "p0" and written[0].scores == {"c": 1.0}
    assert samples[1].scores == {}

from __future__ import annotations

from planner_helpers import synthetic_rows, write_csv

from comfygen.tools.planner.generative import GenerativeConfig, main, make_parser, rank_flows


def test_generative_script_trains_a_tiny_llama_and_ranks_flows(tmp_path):
    csv_path = write_csv(synthetic_rows(n_per_word=1), tmp_path / "t.csv")
    args = make_parser().parse_args(["--triplets", str(csv_path), "--out", str(tmp_path / "ft"), "--tiny",
                                     "--max-steps", "30", "--lr", "3e-3", "--batch-size", "8", "--lora-r", "4",
                                     "--target-modules", "q_proj", "v_proj"])
    cfg = GenerativeConfig(**vars(args))
    assert cfg.tiny and cfg.max_steps == 30
    result = main(cfg)
    assert result["final_loss"] < result["first_loss"]
    assert (tmp_path / "ft" / "adapter" / "adapter_config.json").is_file()
    ranked = rank_flows(result["model"], result["tokenizer"], result["flows"], "a small cat in the picture", 0.9)
    assert sorted(f for f, _ in ranked) == ["creature", "photo", "weak"]

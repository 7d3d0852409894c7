"""Prompt sets: built-in loaders (on the shared data when present), user files, seeded sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfygen.evals.prompts import Prompt, categories, load_set, load_user_file, resolve_data_dir, sample
from comfygen.tools.errors import ConfigError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "prompts").is_dir(), reason="benchmark data folder not present")


@needs_data
@pytest.mark.parametrize("name,count,n_cats", [
    ("parti", 1632, 12), ("drawbench", 200, 11), ("geneval", 553, 6), ("t2i_compbench", 2400, 8),
    ("gecko", 1546, 21), ("imagereward", 100, 1)])
def test_builtin_sets_load_with_their_categories(name, count, n_cats):
    ps = load_set(name, DATA)
    assert len(ps) == count
    assert len(categories(ps)) == n_cats
    assert len({p.id for p in ps}) == count  # ids are unique
    assert all(p.text.strip() for p in ps)


def test_geneval_ships_with_the_package_and_keeps_its_metadata(tmp_path):
    ps = load_set("geneval", tmp_path / "nowhere")  # falls back to the shipped copy
    assert len(ps) == 553
    assert categories(ps) == {"color_attr": 100, "colors": 94, "counting": 80, "position": 100,
                              "single_object": 80, "two_object": 99}
    pos = next(p for p in ps if p.category == "position")
    assert pos.meta["include"][1]["position"][0] in {"left of", "right of", "above", "below"}


def test_missing_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYGEN_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as e:
        load_set("parti")
    assert "prompts/" in str(e.value)
    with pytest.raises(ConfigError):
        load_set("no-such-set")


def test_user_files_txt_csv_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\na cat\n\n  a dog  \n")
    (tmp_path / "b.csv").write_text('prompt,category\n"a red, shiny car",vehicles\na tree,nature\n')
    (tmp_path / "c.jsonl").write_text(json.dumps({"prompt": "x", "tag": "t1", "extra": 1}) + "\n"
                                      + json.dumps({"text": "y"}) + "\n")
    a = load_user_file(tmp_path / "a.txt")
    assert [p.text for p in a] == ["a cat", "a dog"] and a[0].id == "a:0"
    b = load_user_file(tmp_path / "b.csv")
    assert [(p.text, p.category) for p in b] == [("a red, shiny car", "vehicles"), ("a tree", "nature")]
    c = load_set(str(tmp_path / "c.jsonl"))
    assert [(p.text, p.category) for p in c] == [("x", "t1"), ("y", "")] and c[0].meta["extra"] == 1
    (tmp_path / "bad.jsonl").write_text('{"nope": 1}\n')
    with pytest.raises(ConfigError):
        load_user_file(tmp_path / "bad.jsonl")
    (tmp_path / "d.pdf").write_text("x")
    with pytest.raises(ConfigError):
        load_user_file(tmp_path / "d.pdf")


def _pool() -> list[Prompt]:
    return [Prompt(id=f"s:{i}", text=f"t{i}", category=c) for i, c in enumerate(["a"] * 10 + ["b"] * 5 + ["c"] * 2)]


def test_sampling_is_seeded_and_keeps_file_order():
    ps = _pool()
    one = sample(ps, n=6, seed=1)
    assert one == sample(ps, n=6, seed=1)
    assert [p.id for p in one] == sorted((p.id for p in one), key=lambda i: int(i.split(":")[1]))
    assert len(one) == 6
    seeds_differ = {frozenset(p.id for p in sample(ps, n=6, seed=s)) for s in range(5)}
    assert len(seeds_differ) > 1  # the seed matters


def test_sampling_spreads_over_categories_and_caps_per_category():
    ps = _pool()
    picked = sample(ps, n=6, seed=0)
    assert categories(picked) == {"a": 2, "b": 2, "c": 2}  # round-robin keeps the small category in
    capped = sample(ps, per_category=3, seed=0)
    assert categories(capped) == {"a": 3, "b": 3, "c": 2}
    only = sample(ps, categories=["b"], seed=0)
    assert categories(only) == {"b": 5}
    assert len(sample(ps, n=100, seed=0)) == len(ps)
    with pytest.raises(ConfigError):
        sample(ps, categories=["zzz"])


def test_resolve_data_dir_rejects_a_folder_without_prompts(tmp_path):
    with pytest.raises(ConfigError):
        resolve_data_dir(tmp_path)

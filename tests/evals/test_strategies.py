"""Strategy specs and flow choice (the planner is a stub: the choice logic around it is what is tested)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from comfygen.evals.prompts import Prompt
from comfygen.evals.runner import prompt_seeds
from comfygen.evals.strategies import StrategySpec, build_strategies
from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.errors import ConfigError


@pytest.fixture(scope="module")
def library():
    return FlowLibrary.default(variants=False)


@dataclass
class Pred:
    flow_id: str
    score: float


class StubPlanner:
    def __init__(self, ids):
        self.ids = ids
        self.calls = []

    def predict(self, prompt, k=5, target_score=None, allowed=None):
        self.calls.append((prompt, k, target_score))
        return [Pred(i, 0.9 - 0.1 * n) for n, i in enumerate(self.ids)][:k]


def test_flows_expand_and_names_are_unique(library):
    specs = [StrategySpec(kind="flow", flow="sd15-base"), StrategySpec(kind="flows", flows=["sdxl-base", "sd15-lcm"])]
    built = build_strategies(specs, library)
    assert [s.name for s in built] == ["sd15-base", "sdxl-base", "sd15-lcm"]
    with pytest.raises(ConfigError):
        build_strategies([StrategySpec(kind="flow", flow="sd15-base")] * 2, library)
    with pytest.raises(ConfigError):
        build_strategies([StrategySpec(kind="flow", flow="no-such-flow")], library)


def test_planner_takes_the_first_executable_flow_it_knows(library):
    (st,) = build_strategies([StrategySpec(kind="planner", target_score=0.7, top_k=4)], library)
    st._planner = StubPlanner(["unknown-flow", "sdxl-juggernaut", "sd15-base"])
    p = Prompt(id="x:1", text="a castle")
    c = st.choose(p)
    assert c.flow.id == "sdxl-juggernaut" and c.note.startswith("planner's top allowed flow")
    assert st._planner.calls == [("a castle", 4, 0.7)]
    st.choose(p)
    assert len(st._planner.calls) == 1  # one prediction per prompt, whatever the number of seeds
    (none,) = build_strategies([StrategySpec(kind="planner", name="ft2")], library)
    none._planner = StubPlanner(["unknown-flow"])
    with pytest.raises(ConfigError):
        none.choose(p)


def test_search_on_a_fixed_flow_does_not_need_the_planner(library):
    (st,) = build_strategies([StrategySpec(kind="planner_search", flow="sd15-base")], library)
    assert st.choose(Prompt(id="x:2", text="t")).flow.id == "sd15-base"
    assert st.spec.search is not None and st.name == "comfygen-ft+search"


def test_seeds_depend_on_prompt_id_and_base_only():
    p = Prompt(id="parti:7", text="x")
    assert prompt_seeds(p, 0, 3) == prompt_seeds(Prompt(id="parti:7", text="other text"), 0, 3)
    assert prompt_seeds(p, 0, 3) != prompt_seeds(p, 1, 3)
    assert len(set(prompt_seeds(p, 0, 4))) == 4 and all(0 <= s < 2**32 for s in prompt_seeds(p, 0, 4))


def test_planner_only_patterns_restrict_the_choice(library):
    (st,) = build_strategies([StrategySpec(kind="planner", only=["sd15-*"])], library)
    st._planner = StubPlanner(["sdxl-base", "sd15-lcm", "sd15-base"])
    assert st.choose(Prompt(id="x:3", text="t")).flow.id == "sd15-lcm"

"""ComfyUI events -> MCP progress: steps accumulate across samplers, and progress only ever grows."""

from __future__ import annotations

import pytest

from comfygen.tools.app.progress import ProgressTracker
from comfygen.tools.comfy.events import Cached, Finished, NodeStarted, Progress, Queued, Started

pytestmark = pytest.mark.anyio


async def test_two_samplers_accumulate_and_progress_only_grows():
    sent = []

    async def report(p, total, message):
        sent.append((p, total, message))

    t = ProgressTracker(report, class_types={"3": "KSampler", "9": "KSampler"})
    events = [Queued(prompt_id="x", position=1), Started(prompt_id="x"), Cached(nodes=["1", "2"]),
              NodeStarted(node="3", class_type="KSampler")]
    events += [Progress(node="3", value=i, max=4) for i in range(1, 5)]
    events += [NodeStarted(node="9", class_type="KSampler")] + [Progress(node="9", value=i, max=2) for i in (1, 2)]
    events += [Progress(node="9", value=2, max=2), Finished(prompt_id="x")]
    for ev in events:
        await t(ev)
    values = [p for p, _, _ in sent]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert t.state.steps_total == 6 and t.state.steps_done == 6 and t.state.cached == 2
    assert any("step 4/4" in m for _, _, m in sent) and any("step 6/6" in m for _, _, m in sent)
    assert sent[-1][2].startswith("saving")


async def test_a_failing_reporter_is_dropped_not_fatal():
    async def broken(p, total, message):
        raise ConnectionError("client went away")

    t = ProgressTracker(broken)
    await t(Started(prompt_id="x"))
    assert t.report is None
    await t(Progress(node="3", value=1, max=2))  # still tracks state
    assert t.state.steps_done == 1

"""SIGTERM to a long CLI command behaves like Ctrl-C: ComfyUI's prompt is interrupted and removed, the run is
recorded cancelled. ``--on-sigterm leave`` leaves it to ComfyUI instead. Real subprocesses, the fake ComfyUI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fakecomfy import FakeComfyUI
from mcp_helpers import library_models
from stdio_helpers import wait_for

from comfygen.tools.store import RunStore

CLI = [sys.executable, "-c", "from comfygen.server.cli import main; main()"]


@pytest.fixture
def slow():
    fake = FakeComfyUI(models=library_models(), steps=100, step_time=0.1).start_in_thread()  # ~10 s per run
    yield fake
    fake.stop()


def _start(args, home, url, *extra_env):
    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": url, "COMFYGEN_SCORERS": "",
           **dict(extra_env)}
    return subprocess.Popen(CLI + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _runs(home):
    with RunStore(home / "runs.sqlite") as store:
        return store.list()


def _term_when_running(proc, fake):
    try:
        wait_for(lambda: fake.running is not None or proc.poll() is not None, timeout=60,
                 what="ComfyUI to execute the prompt")
        assert proc.poll() is None, proc.communicate()[1].decode()
        proc.send_signal(signal.SIGTERM)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_to_comfygen_run_interrupts_comfyui_and_records_the_run_cancelled(slow, tmp_path):
    home = tmp_path / "home"
    proc = _start(["run", "sd15-base", "-p", "a slow fox", "--size", "64x64", "-e", slow.url], home, slow.url)
    code = _term_when_running(proc, slow)
    assert code != 0
    runs = _runs(home)
    assert [r.status for r in runs] == ["cancelled"], (runs, proc.stderr.read().decode() if proc.stderr else "")
    assert slow.interrupts and slow.running is None and not slow.pending  # nothing left working on ComfyUI
    assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


def test_sigterm_to_a_dataset_build_cancels_its_queued_and_running_prompts(slow, tmp_path):
    home = tmp_path / "home"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a slow fox\na slow owl\na slow cat\n")
    proc = _start(["dataset", "build", "--prompts", str(prompts), "--flows", "sd15-base", "--out",
                   str(tmp_path / "ds"), "--width", "64", "--height", "64", "--tiny-scorers"], home, slow.url,
                  ("COMFYGEN_SCORERS", "aesthetic"))
    _term_when_running(proc, slow)
    runs = _runs(home)
    assert runs and all(r.status == "cancelled" for r in runs), [(r.status, r.error) for r in runs]
    assert slow.running is None and not slow.pending and len(slow.history) <= 1


def test_on_sigterm_leave_keeps_the_old_way_for_those_who_ask(slow, tmp_path):
    home = tmp_path / "home"
    proc = _start(["--on-sigterm", "leave", "run", "sd15-base", "-p", "a slow fox", "--size", "64x64",
                   "-e", slow.url], home, slow.url)
    code = _term_when_running(proc, slow)
    assert code == -signal.SIGTERM
    assert [r.status for r in _runs(home)] == ["running"] and not slow.interrupts


def test_sigterm_to_comfygen_search_cancels_its_prompts(slow, tmp_path):
    home = tmp_path / "home"
    proc = _start(["search", "-p", "a slow fox", "-f", "sd15-base", "--candidates", "4", "--batch", "2",
                   "--size", "64x64", "--verifiers", "aesthetic", "--tiny-verifiers", "-e", slow.url], home, slow.url)
    _term_when_running(proc, slow)
    runs = _runs(home)
    assert runs and all(r.status == "cancelled" for r in runs), [(r.status, r.error) for r in runs]
    assert slow.interrupts and slow.running is None and not slow.pending

"""A nearly full disk under COMFYGEN_HOME (a small tmpfs; needs root): `comfygen run` ends with a clear message and
a hint, no traceback, no run left "running" once recovered, no unreferenced PNG, no temp file left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from fakecomfy import FakeComfyUI
from mcp_helpers import library_models

from comfygen.tools.store import RunStore

CLI = [sys.executable, "-c", "from comfygen.server.cli import main; main()"]


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="module")
def fake():
    fake = FakeComfyUI(models=library_models()).start_in_thread()
    yield fake
    fake.stop()


def _fill(mnt, leave: int):
    """Fill the disk so that about ``leave`` bytes stay free."""
    filler = mnt / f"filler-{uuid.uuid4().hex}"
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def _run(home, url):
    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": url, "COMFYGEN_SCORERS": ""}
    return subprocess.run(CLI + ["run", "sd15-base", "-p", "a fox on a full disk", "--size", "64x64", "-e", url],
                          env=env, capture_output=True, text=True, timeout=120)


# Free space left before the run: from "cannot open the store" through "cannot save the PNG" and "cannot record
# the finished run" (so the failure cannot be recorded either) to "fits" (the thresholds depend on the machine).
@pytest.mark.parametrize("leave_kib", [0, 24, 56, 64, 68, 72, 80, 96])
def test_a_full_disk_gives_a_clear_message_and_leaves_a_consistent_store(tmpfs, fake, leave_kib):
    home = tmpfs / "home"
    ok = _run(home, fake.url)  # a user's existing store, before the disk fills up
    assert ok.returncode == 0, ok.stderr
    filler = _fill(tmpfs, leave_kib * 1024)
    res = _run(home, fake.url)
    filler.unlink()  # space again: what is left behind must make sense

    assert "Traceback" not in res.stderr, res.stderr
    if res.returncode != 0:
        assert "disk full" in res.stderr and "hint:" in res.stderr and "free disk space" in res.stderr, res.stderr
        assert "disk I/O error" not in res.stderr
    with RunStore(home / "runs.sqlite") as store:
        store.recover_orphans()  # what the next `comfygen run` (or `runs recover`) does first
        runs = store.list(limit=None)
    assert not [r for r in runs if r.status in ("queued", "running")], [(r.status, r.error) for r in runs]
    referenced = {o.path for r in runs if r.status == "succeeded" for o in r.outputs}
    on_disk = {str(p.resolve()) for p in (home / "outputs").rglob("*.png")}
    assert on_disk == referenced  # no unreferenced PNG, no record pointing at a missing one
    assert not list(home.rglob(".*.tmp"))  # temp files of the failed writer are gone
    print(f"leave {leave_kib} KiB: exit {res.returncode}: {res.stderr.strip().splitlines()[-2:]}")


def test_temp_files_of_a_killed_writer_are_removed_when_the_store_opens(tmp_path):
    day = tmp_path / "outputs" / "2026-01-01"
    day.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = day / f".x_00.png.{dead.pid}.0badf00d.tmp"
    mine = day / f".y_00.png.{os.getpid()}.0badf00d.tmp"  # a writer of this process, still at work
    stale.write_bytes(b"half a png")
    mine.write_bytes(b"being written")
    RunStore(tmp_path / "runs.sqlite").close()
    assert not stale.exists() and mine.exists()

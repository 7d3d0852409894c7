from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from comfygen.tools import files, images
from comfygen.tools.errors import StoreError
from comfygen.tools.files import remove_stale_temp
from comfygen.tools.images import (add_png_text, read_png_text, save_png_atomic, thumbnail,
                                   update_png_text)
from comfygen.tools.store import RunStore


def _png(size=(64, 48), color=(200, 10, 10), text: dict | None = None) -> bytes:
    im = Image.new("RGB", size, color)
    buf = io.BytesIO()
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
        im.save(buf, "PNG", pnginfo=info)
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


def test_save_keeps_pixels_and_adds_provenance(tmp_path):
    data = _png(text={"prompt": '{"old": 1}', "workflow": "{}"})
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    out = save_png_atomic(data, tmp_path / "d" / "x.png", {"prompt": graph, "comfygen": {"prompt": "café ☕ \"q\""}})
    raw = Path(out.path).read_bytes()
    assert out.sha256 == hashlib.sha256(raw).hexdigest() and out.size == len(raw) and (out.width, out.height) == (64, 48)
    text = read_png_text(raw)
    assert json.loads(text["prompt"]) == graph  # replaced, not duplicated
    assert text["workflow"] == "{}"  # other chunks kept
    assert json.loads(text["comfygen"]) == {"prompt": "café ☕ \"q\""}
    with Image.open(out.path) as im:
        assert im.getpixel((0, 0)) == (200, 10, 10)
        assert json.loads(im.text["comfygen"])["prompt"].startswith("café")  # Pillow reads our iTXt
    assert not list(tmp_path.rglob("*.tmp"))


def test_pil_and_other_formats(tmp_path):
    out = save_png_atomic(Image.new("RGB", (16, 8)), tmp_path / "a.png", {"k": "v"})
    assert (out.width, out.height) == (16, 8) and read_png_text(Path(out.path))["k"] == "v"
    buf = io.BytesIO()
    Image.new("RGB", (20, 10)).save(buf, "JPEG")
    out = save_png_atomic(buf.getvalue(), tmp_path / "b.png")
    assert Path(out.path).read_bytes().startswith(images.PNG_SIGNATURE) and out.width == 20
    with pytest.raises(ValueError):
        add_png_text(b"not a png", {})


def test_update_merges_our_json(tmp_path):
    p = tmp_path / "a.png"
    save_png_atomic(_png(), p, {"comfygen": {"run_id": "r1", "scores": None}})
    update_png_text(p, {"comfygen": {"scores": {"pickscore": 21.0}}})
    assert json.loads(read_png_text(p)["comfygen"]) == {"run_id": "r1", "scores": {"pickscore": 21.0}}


def test_disk_full_is_store_error_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out" / "a.png"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(StoreError) as e:
        save_png_atomic(_png(), target, {"a": "b"})
    assert "disk full" in e.value.message and e.value.hint
    assert not target.exists() and not list(tmp_path.rglob("*.tmp"))


def test_thumbnail_caps(tmp_path):
    noisy = Image.effect_noise((900, 600), 80).convert("RGB")
    p = tmp_path / "n.png"
    save_png_atomic(noisy, p)
    data, mime = thumbnail(p)
    assert mime in ("image/webp", "image/jpeg") and len(data) <= 300_000
    with Image.open(io.BytesIO(data)) as im:
        assert max(im.size) == 512
    small, _ = thumbnail(p, max_side=256, max_bytes=8_000)
    assert len(small) <= 8_000
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    save_png_atomic(rgba, tmp_path / "t.png")
    data, _ = thumbnail(tmp_path / "t.png")
    with Image.open(io.BytesIO(data)) as im:
        assert max(im.size) <= 40


_KILLED = r"""
import os, sys, time
from comfygen.tools.images import save_png_atomic
from comfygen.tools.store import RunStore
out, db = sys.argv[1], sys.argv[2]
blob = open(sys.argv[3], "rb").read()
store = RunStore(db)
i = 0
while True:
    rec = store.create(prompt=f"p{i}", flow_id="f", graph={"1": {"class_type": "X", "inputs": {"i": i}}}, seed=i,
                       comfy_prompt_id=None if i % 2 else f"cp{i}")
    store.mark_running(rec.id)
    f = save_png_atomic(blob, os.path.join(out, "img.png"), {"comfygen": {"i": i}})
    store.finish(rec.id, outputs=[f])
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_leaves_whole_files_and_consistent_db(tmp_path):
    blob_path = tmp_path / "blob.png"
    big = Image.effect_noise((1400, 1400), 90).convert("RGB")
    save_png_atomic(big, blob_path)
    out, db = tmp_path / "outputs", tmp_path / "runs.sqlite"
    out.mkdir()
    RunStore(db).close()
    for delay in (0.4, 0.75):
        proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(out), str(db), str(blob_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not (out / "img.png").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        final = (out / "img.png").read_bytes()
        assert read_png_text(final)["comfygen"].startswith('{"i"')
        with Image.open(io.BytesIO(final)) as im:
            im.load()  # a whole PNG, never half of one
        remove_stale_temp(out)
        assert not list(out.rglob("*.tmp"))
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with RunStore(db) as store:
            recovered = store.recover_orphans()
            assert len(recovered) <= 1  # at most the one run that was in flight
            assert store.count(status="running") == 0 and store.count(status="queued") == 0
            for r in recovered:
                # handed to ComfyUI (running, with a prompt id): resumable; otherwise it never got there
                assert r.status in ("interrupted", "failed")
                assert r.resumable == (r.status == "interrupted") and (r.status == "failed") == (
                    r.error is not None and r.error.type == "NeverSubmitted")
            for r in store.list(status="succeeded", limit=None):
                assert Path(r.outputs[0].path).name == "img.png"


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=60, deadline=None)
@given(prompt=st.text(max_size=300), key=st.sampled_from(["comfygen", "prompt", "x"]))
def test_provenance_roundtrips_any_text(prompt, key):
    data = add_png_text(_png(size=(4, 4)), {key: {"prompt": prompt, "seed": 2**64 - 1}})
    assert json.loads(read_png_text(data)[key]) == {"prompt": prompt, "seed": 2**64 - 1}
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert json.loads(im.text[key])["prompt"] == prompt

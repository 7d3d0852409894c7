"""`comfygen search` against the fake ComfyUI (tiny random-weight verifiers)."""

from __future__ import annotations

import json

from search_helpers import CKPT, sd15_flow

from comfygen.server.cli import main
from fakecomfy import FakeComfyUI
from fakecomfy_noise import NoiseExecutors


def _user_flow(home) -> None:
    flow = sd15_flow(64, steps=2).model_copy(update={"id": "sd15-tiny-test", "name": "tiny"})
    d = home / "flows"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sd15-tiny-test.json").write_text(json.dumps(flow.model_dump(mode="json")))


def test_cli_zero_order_writes_summary_and_sheet(_isolated_home, tmp_path, capsys):
    _user_flow(_isolated_home)
    fake = FakeComfyUI(models={"checkpoints": [CKPT]}, executors=NoiseExecutors().executors()).start_in_thread()
    try:
        out = tmp_path / "out"
        try:
            main(["search", "-p", "a lighthouse", "-f", "sd15-tiny-test", "-a", "zero-order", "-n", "7",
                  "--neighbours", "3", "--lambda", "0.8", "-b", "4", "-v", "aesthetic,imagereward",
                  "--aggregation", "mean_rank", "--tiny-verifiers", "-e", fake.url, "-o", str(out), "--json"])
        except SystemExit as e:
            assert e.code in (0, None)
    finally:
        fake.stop()
    summary = json.loads(capsys.readouterr().out)
    assert summary["algorithm"] == "zero-order" and len(summary["candidates"]) == 7
    assert summary["aggregation"] == "mean_rank" and set(summary["verifiers"]) == {"aesthetic", "imagereward"}
    assert (out / "summary.json").exists() and (out / "contact_sheet.png").exists()
    assert summary["best"]["rank"] == 1


def test_cli_zero_order_on_flux_needs_the_node_pack(_isolated_home, capsys, fake_comfyui):
    try:
        main(["search", "-p", "x", "-f", "flux-schnell", "-a", "zero-order", "-v", "aesthetic", "--tiny-verifiers",
              "-e", fake_comfyui.url])
    except SystemExit as e:
        assert e.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "ComfyGenNoise" in err and "comfygen comfyui install-nodes" in err and "--algorithm random" in err
    assert not fake_comfyui.history  # refused before anything ran


def test_cli_check_noise_on_the_fake(_isolated_home, capsys):
    from fakecomfy_noise import object_info_with_pack

    _user_flow(_isolated_home)
    fake = FakeComfyUI(object_info=object_info_with_pack(), models={"checkpoints": [CKPT]},
                       executors=NoiseExecutors().executors()).start_in_thread()
    try:
        try:
            main(["comfyui", "check-noise", "-f", "sd15-tiny-test", "-e", fake.url])
        except SystemExit as e:
            assert e.code in (0, None)
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert err.count("max relative error") == 3 and "pack" in err

"""The build scripts in scripts/ run from a checkout and write only where they are told."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from comfygen.flow_library.model import Flow

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "flow_library" / "flows" / "base"


def test_build_base_flows_reproduces_the_shipped_base_flows(tmp_path):
    out = tmp_path / "base"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_base_flows.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = {p.name: Flow.model_validate_json(p.read_text()) for p in out.glob("*.json")}
    shipped = {p.name: Flow.model_validate_json(p.read_text()) for p in BASE.glob("*.json")}
    assert built.keys() == shipped.keys()
    assert all(built[k] == shipped[k] for k in shipped), [k for k in shipped if built[k] != shipped[k]]


def test_build_scripts_need_an_output_path(tmp_path):
    for script in ("build_base_flows.py", "build_bundle.py", "build_prototypes.py"):
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script)], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == 2 and "--out" in proc.stderr, (script, proc.stderr[-500:])

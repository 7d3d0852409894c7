"""Stage what the GPU benchmark needs on a machine that can fetch nothing: ComfyUI's code and missing wheels.

Writes an ignored folder (default ``.gpu-stage/`` at the repository root, ignored by its own ``.gitignore``;
never committed) holding

- ``ComfyUI/``: ComfyUI's code at a fixed commit, taken from a git directory or checkout of its public
  repository (blobs the copy lacks are left out and listed), with ``gpu_bench_node.py`` as
  ``custom_nodes/comfygen_bench.py``;
- ``wheels/``: the wheels ComfyUI and the benchmark driver import that a stock PyTorch image lacks
  (``av``, ``torchsde``, ``trampoline``; ``pydantic``, ``pydantic-core``, ``annotated-types``,
  ``typing-inspection``, ``websockets``), for the target Python, fetched with ``pip download``;
- ``MANIFEST.json``: commit, files left out, wheels, and the size of everything that travels.

It fails when the working tree plus the stage exceed the limit (64 MiB). Then run ``gpu_run.sh`` there.

    python -m comfygen.evals.perf.gpu_stage --comfyui-git /path/to/ComfyUI/.git [--rev a125cd84] \\
        [--python-version 3.12] [--out .gpu-stage]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REV = "a125cd84b054a57729b5eecab930ca9408719832"  # ComfyUI 0.3.64, the version recorded in shared/comfyui
SKIP_DIRS = (".github/", ".ci/", "tests/", "tests-unit/")
WHEELS = ["av==18.1.0", "torchsde==0.2.6", "trampoline==0.1.2"]
DRIVER = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "websockets"]  # pinned to this env
LIMIT = 64 * 2 ** 20
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_34_x86_64"]


def export_tree(git_dir: Path, rev: str, dest: Path) -> list[str]:
    """Write every blob of ``rev`` under ``dest``; returns the paths whose blobs the repository lacks."""
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", rev], check=True,
                             capture_output=True).stdout.split(b"\0")
    entries = []
    for line in filter(None, listing):
        meta, path = line.split(b"\t", 1)
        mode, kind, sha = meta.split()
        name = path.decode()
        if kind == b"blob" and not name.startswith(SKIP_DIRS):
            entries.append((mode.decode(), sha.decode(), name))
    batch = subprocess.Popen(["git", "--git-dir", str(git_dir), "cat-file", "--batch"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert batch.stdin and batch.stdout
    missing = []
    for mode, sha, name in entries:
        batch.stdin.write(sha.encode() + b"\n")
        batch.stdin.flush()
        header = batch.stdout.readline().split()
        if header[-1] == b"missing":
            missing.append(name)
            continue
        data = batch.stdout.read(int(header[2]))
        batch.stdout.read(1)
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            target.unlink(missing_ok=True)
            target.symlink_to(data.decode())
        else:
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    batch.stdin.close()
    batch.wait()
    return missing


def download_wheels(dest: Path, python_version: str) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    pins = WHEELS + [f"{name}=={metadata.version(name)}" for name in DRIVER]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + pins, check=True)
    return sorted(p.name for p in dest.glob("*.whl"))


def traveling_bytes(stage: Path) -> int:
    """Tracked and untracked-not-ignored files of the working tree, plus the stage."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.split(b"\0")
    tree = sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())
    staged = sum(p.lstat().st_size for p in stage.rglob("*") if p.is_file() or p.is_symlink())
    return tree + staged


def ignore(stage: Path) -> None:
    """Make git ignore the stage from inside it (so it never travels uncarried and is never committed)."""
    (stage / ".gitignore").write_text("# staged by evals/perf/gpu_stage.py: third-party code and wheels, "
                                      "never committed\n*\n")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui-git", type=Path, required=True, help="git dir (or checkout) of Comfy-Org/ComfyUI")
    ap.add_argument("--rev", default=REV)
    ap.add_argument("--python-version", default="3.12", help="Python of the machine that will run it")
    ap.add_argument("--out", type=Path, default=REPO / ".gpu-stage")
    args = ap.parse_args(argv)
    stage = args.out.resolve()
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    ignore(stage)
    git_dir = args.comfyui_git / ".git" if (args.comfyui_git / ".git").exists() else args.comfyui_git
    missing = export_tree(git_dir, args.rev, stage / "ComfyUI")
    node = stage / "ComfyUI" / "custom_nodes" / "comfygen_bench.py"
    shutil.copyfile(Path(__file__).with_name("gpu_bench_node.py"), node)
    wheels = download_wheels(stage / "wheels", args.python_version)
    total = traveling_bytes(stage)
    manifest = {"comfyui_rev": args.rev, "left_out": missing, "wheels": wheels, "python_version": args.python_version,
                "traveling_mib": round(total / 2 ** 20, 1), "limit_mib": LIMIT // 2 ** 20,
                "comfyui_mib": round(sum(p.stat().st_size for p in (stage / "ComfyUI").rglob("*")
                                         if p.is_file()) / 2 ** 20, 1),
                "wheels_mib": round(sum(p.stat().st_size for p in (stage / "wheels").glob("*.whl")) / 2 ** 20, 1)}
    (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest, indent=1))
    if total > LIMIT:
        raise SystemExit(f"{total / 2 ** 20:.1f} MiB would travel, over the {LIMIT // 2 ** 20} MiB limit")
    print(f"staged in {stage}: run `bash evals/perf/gpu_run.sh` on the GPU machine, carrying {stage.name}")
    return manifest


if __name__ == "__main__":
    main()

"""Packaging guards: every subpackage is listed in pyproject, and no bare top-level package leaks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"server": "comfygen.server", "tools": "comfygen.tools", "flow_library": "comfygen.flow_library",
         "evals": "comfygen.evals"}


def packages_on_disk() -> set[str]:
    found = set()
    for folder, dotted in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([dotted, *rel.parts]) if rel.parts else dotted)
    return found


def test_every_subpackage_on_disk_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = packages_on_disk() - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    stale = listed - packages_on_disk()
    assert not stale, f"listed in pyproject but not on disk: {sorted(stale)}"


def test_bare_top_level_names_are_not_importable_outside_the_repo(tmp_path):
    code = ("import importlib.util, sys; "
            "print([n for n in ('server','tools','evals','flow_library') if importlib.util.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_installed_package_imports_from_anywhere(tmp_path):
    code = "import comfygen.server, comfygen.tools, comfygen.flow_library, comfygen.evals; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_package_data_includes_flow_files():
    spec = importlib.util.find_spec("comfygen.flow_library")
    assert spec is not None and spec.submodule_search_locations

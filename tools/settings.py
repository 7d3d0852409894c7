"""One settings object, from ``COMFYGEN_*`` environment variables (and CLI flags that override them)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Lists come from env vars as JSON or as comma-separated text.
StrList = Annotated[list[str], NoDecode]


def default_home() -> Path:
    """``$COMFYGEN_HOME``, else ``$XDG_DATA_HOME/comfygen``, else ``~/.local/share/comfygen``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "comfygen"


class Settings(BaseSettings):
    """Everything configurable. Env vars are ``COMFYGEN_<FIELD>`` (lists as JSON or comma-separated)."""

    model_config = SettingsConfigDict(env_prefix="COMFYGEN_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory: run store, outputs, user flows.")
    comfyui_urls: StrList = Field(default_factory=list, description="ComfyUI base URLs (one per GPU or host).")
    connect_timeout_s: float = Field(5.0, description="HTTP connect timeout per request.")
    read_timeout_s: float = Field(60.0, description="HTTP read timeout per request.")
    run_deadline_s: float = Field(1800.0, description="Overall deadline for one ComfyUI run.")
    scorers: StrList = Field(default_factory=lambda: ["imagereward", "hpsv21", "pickscore", "aesthetic", "clipscore"],
                               description="Scorers in the default ensemble.")
    scorer_device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    weights_dir: Path | None = Field(None, description="Directory with local scorer weights (overrides HF ids).")
    planner_dir: Path | None = Field(None, description="Planner artifact directory (default: the bundled planner).")
    online_table_updates: bool = Field(True, description="Update the score table with every scored run.")
    node_packs: StrList = Field(default_factory=list, description="Extra custom node packs allowed in graphs.")
    max_side: int = Field(4096, description="Largest width or height a run may ask for.")
    max_steps: int = Field(200, description="Most sampler steps a run may ask for.")
    max_batch: int = Field(64, description="Most images in one ComfyUI prompt.")
    image_dirs: StrList = Field(default_factory=list,
                                description="Folders besides COMFYGEN_HOME whose images score_image may read "
                                            "(comma-separated); nothing else on the disk is readable through it.")

    @field_validator("comfyui_urls", "scorers", "node_packs", "image_dirs", mode="before")
    @classmethod
    def _split_commas(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        return v

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"

    @property
    def store_path(self) -> Path:
        return self.home / "runs.sqlite"

    @property
    def user_flows_dir(self) -> Path:
        return self.home / "flows"

    @property
    def score_table_path(self) -> Path:
        return self.home / "score_table.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings(home=tmp_path)`` instead)."""
    return Settings()

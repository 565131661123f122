"""Model profiles: what a served model reads (text, or text + screenshot) and how it answers.

Profiles live in `config/models.json` (SPARKPILOT_MODEL_PROFILES), matched by model name; adapters
share their base model's profile. The first profile whose `match` glob fits the lowercased name
(or its last path part) wins; a model that matches none is a text model answering in bids.
"""

from __future__ import annotations

import fnmatch
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparkpilot.settings import CommonSettings


class ModelProfile(BaseModel):
    """How the agent talks to one family of models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = "*"
    input: Literal["text", "text+image"] = "text"  # text+image: each step sends the screenshot
    actions: Literal["bids", "coordinates"] = "bids"  # coordinates: the model clicks at pixels
    answer: Literal["json", "fara"] = "json"  # json: our action schema; fara: Fara-7B's <tool_call> format
    # Screenshot resizing (Qwen2.5-VL smart_resize): sides become multiples of `image_factor`,
    # the area stays within [min_pixels, max_pixels].
    image_factor: int = Field(default=28, ge=1)
    min_pixels: int = Field(default=3136, ge=1)
    max_pixels: int = Field(default=1_003_520, ge=1)
    max_images: int = Field(default=1, ge=1)  # screenshots per prompt (vLLM --limit-mm-per-prompt)
    note: str = ""


TEXT_DEFAULT = ModelProfile()


@lru_cache
def load_profiles(path: str) -> tuple[ModelProfile, ...]:
    """The profiles in `path`, in order (ValueError naming the file if it is not valid)."""
    file = Path(path)
    if not file.is_file():
        return ()
    try:
        raw = json.loads(file.read_text())
        return tuple(ModelProfile.model_validate(p) for p in raw["profiles"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"model profiles file {file} is not valid: {exc}") from exc


def profile_for(model: str, path: Path | str) -> ModelProfile:
    """The profile of the served model `model` (a hub id, a folder or a served name)."""
    name = model.lower().rstrip("/")
    for profile in load_profiles(str(path)):
        pattern = profile.match.lower()
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern):
            return profile
    return TEXT_DEFAULT


def served_profile(settings: CommonSettings) -> ModelProfile:
    """The profile of the model this deployment serves (adapters share their base model's)."""
    return profile_for(settings.inference_model, settings.model_profiles)

"""Prompt categories: the labels a prompt is broken down into, and the columns of the score table.

As in ComfyGen (sec. 3.3), about twenty labels mixing object categories ("People", "Wildlife"),
scene categories ("Urban", "Nature") and styles ("Anime", "Photorealistic"). Ids are stable: a
classifier is trained on them and score tables are keyed by them, so never rename one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ComfyGenError

CategoryKind = Literal["object", "scene", "style"]


class Category(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable id, e.g. 'people'.")
    name: str = Field(description="Display name.")
    description: str = Field(description="What prompts of this category are about, in one line.")
    kind: CategoryKind = Field(description="object, scene or style label.")


class UnknownCategory(ComfyGenError, KeyError):
    """No category with that id."""


CATEGORIES: tuple[Category, ...] = (
    Category(id="people", name="People", kind="object",
             description="Humans as the subject: one or more people, full body or groups, doing something."),
    Category(id="portrait", name="Portrait", kind="object",
             description="A close view of a face or head and shoulders; skin, eyes and expression matter."),
    Category(id="animals", name="Wildlife / Animals", kind="object",
             description="Wild animals, pets, birds, insects, sea life."),
    Category(id="nature", name="Nature / Landscape", kind="scene",
             description="Landscapes, mountains, forests, seas, skies, plants and flowers, weather."),
    Category(id="urban", name="Urban / Architecture", kind="scene",
             description="Cities, streets, buildings, bridges, exteriors of architecture."),
    Category(id="interior", name="Interior", kind="scene",
             description="Rooms and indoor spaces: living rooms, kitchens, shops, halls, furniture."),
    Category(id="food", name="Food", kind="object",
             description="Dishes, drinks, ingredients, food photography."),
    Category(id="vehicles", name="Vehicles", kind="object",
             description="Cars, motorbikes, trains, planes, ships, spacecraft."),
    Category(id="objects", name="Objects / Products", kind="object",
             description="Single things and product shots: gadgets, tools, jewellery, still life."),
    Category(id="fashion", name="Fashion / Clothing", kind="object",
             description="Clothes, outfits, costumes, accessories, fashion shoots."),
    Category(id="anime", name="Anime / Manga", kind="style",
             description="Japanese anime or manga style, cel shading, characters."),
    Category(id="illustration", name="Illustration / Cartoon", kind="style",
             description="Drawn or cartoon styles, comics, children's book, vector and flat art, sketches."),
    Category(id="painting", name="Painting / Fine art", kind="style",
             description="Oil, watercolour, impressionism and other painterly or art-historical styles."),
    Category(id="photorealistic", name="Photorealistic", kind="style",
             description="Looks like a real photograph: camera, lens, lighting and film terms."),
    Category(id="fantasy", name="Fantasy", kind="style",
             description="Magic, dragons, castles, mythical creatures, fairy-tale scenes."),
    Category(id="scifi", name="Sci-fi", kind="style",
             description="Futuristic technology, robots, space, cyberpunk."),
    Category(id="abstract", name="Abstract", kind="style",
             description="Non-figurative shapes, patterns, fractals, surreal or conceptual compositions."),
    Category(id="render3d", name="3D render", kind="style",
             description="CGI looks: octane/unreal render, isometric, clay, low-poly, 3D characters."),
    Category(id="text", name="Text / Typography", kind="style",
             description="The image must contain legible words: signs, logos, posters, lettering."),
    Category(id="dark", name="Dark / Horror", kind="style",
             description="Horror, gothic, dark and moody scenes, night."),
    Category(id="composition", name="Complex composition", kind="scene",
             description="Several objects with counts, colours and spatial relations that must all be right."),
)

_BY_ID = {c.id: c for c in CATEGORIES}


def category_ids() -> list[str]:
    """All category ids, in their stable order."""
    return [c.id for c in CATEGORIES]


def get_category(category_id: str) -> Category:
    try:
        return _BY_ID[category_id]
    except KeyError:
        raise UnknownCategory(f"unknown category {category_id!r}",
                              hint=f"use one of: {', '.join(category_ids())}") from None

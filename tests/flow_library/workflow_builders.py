"""Small UI-format workflows built in code for the import tests (the editor's JSON shape, nothing recorded)."""

from __future__ import annotations

import copy
from typing import Any

from comfygen.flow_library.schema import NodeSchema

SCHEMA = NodeSchema.bundled()
SUBGRAPH_IN, SUBGRAPH_OUT = -10, -20


class UI:
    """A graph being built: nodes by id, links in array form (``objects=True``: the newer object form)."""

    def __init__(self, objects: bool = False):
        self.nodes: dict[int, dict] = {}
        self.links: list[Any] = []
        self.objects = objects
        self.next_link = 1

    def node(self, node_id: int, cls: str, widgets: Any = None, mode: int = 0, **extra: Any) -> int:
        outputs = [{"name": t, "type": t, "links": []} for t in SCHEMA.outputs(cls)] if cls in SCHEMA else []
        node = {"id": node_id, "type": cls, "mode": mode, "inputs": [], "outputs": outputs, "properties": {}, **extra}
        if widgets is not None:
            node["widgets_values"] = widgets
        self.nodes[node_id] = node
        return node_id

    def link(self, src: int, slot: int, dst: int, name: str, type_: str, widget: bool = False) -> int:
        link_id = self.next_link
        self.next_link += 1
        if dst != SUBGRAPH_OUT:
            inp = {"name": name, "type": type_, "link": link_id}
            if widget:
                inp["widget"] = {"name": name}
            self.nodes[dst]["inputs"].append(inp)
        if src in self.nodes:
            outs = self.nodes[src]["outputs"]
            while len(outs) <= slot:
                outs.append({"name": type_, "type": type_, "links": []})
            outs[slot]["links"].append(link_id)
        target_slot = len(self.nodes[dst]["inputs"]) - 1 if dst != SUBGRAPH_OUT else int(name)
        if self.objects:
            self.links.append({"id": link_id, "origin_id": src, "origin_slot": slot, "target_id": dst,
                               "target_slot": target_slot, "type": type_})
        else:
            self.links.append([link_id, src, slot, dst, target_slot, type_])
        return link_id

    def workflow(self, **extra: Any) -> dict:
        return {"last_node_id": max(self.nodes, default=0), "last_link_id": self.next_link - 1,
                "nodes": copy.deepcopy(list(self.nodes.values())), "links": copy.deepcopy(self.links),
                "groups": [], "config": {}, "extra": {}, "version": 0.4, **extra}


def sd15(ckpt: str = "v1-5-pruned-emaonly.safetensors", *, objects: bool = False) -> UI:
    """The classic text-to-image graph: 4 loader, 6/7 prompts, 5 latent, 3 sampler, 8 decode, 9 save."""
    ui = UI(objects)
    ui.node(4, "CheckpointLoaderSimple", [ckpt])
    ui.node(6, "CLIPTextEncode", ["a castle on a hill"])
    ui.node(7, "CLIPTextEncode", ["blurry"])
    ui.node(5, "EmptyLatentImage", [512, 512, 1])
    ui.node(3, "KSampler", [156680208700286, "randomize", 20, 8, "euler", "normal", 1])
    ui.node(8, "VAEDecode")
    ui.node(9, "SaveImage", ["ComfyUI"])
    ui.link(4, 0, 3, "model", "MODEL")
    ui.link(4, 1, 6, "clip", "CLIP")
    ui.link(4, 1, 7, "clip", "CLIP")
    ui.link(6, 0, 3, "positive", "CONDITIONING")
    ui.link(7, 0, 3, "negative", "CONDITIONING")
    ui.link(5, 0, 3, "latent_image", "LATENT")
    ui.link(3, 0, 8, "samples", "LATENT")
    ui.link(4, 2, 8, "vae", "VAE")
    ui.link(8, 0, 9, "images", "IMAGE")
    return ui


INNER_ID = "0c0ffee0-0000-4000-8000-00000000decd"
SUBGRAPH_ID = "5b1e2c3d-0000-4000-8000-000000000001"


def subgraphed(ckpt: str = "v1-5-pruned-emaonly.safetensors", prompt: str | None = "a promoted prompt",
               seed: Any = 42) -> dict:
    """A get-started template in the current editor's shape: the root holds the loader, a subgraph instance
    (node 75) and the SaveImage; the subgraph holds prompts, latent, sampler and a nested subgraph (node 70)
    that wraps the VAEDecode. Links are objects; the prompt and the seed are widgets promoted to node 75."""
    inner = UI(objects=True)
    inner.node(5, "VAEDecode")
    inner.link(SUBGRAPH_IN, 0, 5, "samples", "LATENT")
    inner.link(SUBGRAPH_IN, 1, 5, "vae", "VAE")
    inner.link(5, 0, SUBGRAPH_OUT, "0", "IMAGE")
    inner_def = {"id": INNER_ID, "name": "decode", "nodes": list(inner.nodes.values()), "links": inner.links,
                 "inputs": [{"id": "i0", "name": "samples", "type": "LATENT", "linkIds": [1]},
                            {"id": "i1", "name": "vae", "type": "VAE", "linkIds": [2]}],
                 "outputs": [{"id": "o0", "name": "IMAGE", "type": "IMAGE", "linkIds": [3]}], "widgets": []}

    sg = UI(objects=True)
    sg.node(58, "CLIPTextEncode", ["inner default prompt"])
    sg.node(59, "CLIPTextEncode", ["ugly"])
    sg.node(60, "EmptyLatentImage", [512, 512, 1])
    sg.node(61, "KSampler", [1, "fixed", 20, 7, "euler", "normal", 1])
    sg.node(70, INNER_ID)
    sg.nodes[70]["outputs"] = [{"name": "IMAGE", "type": "IMAGE", "links": []}]
    sg.link(SUBGRAPH_IN, 0, 61, "model", "MODEL")
    sg.link(SUBGRAPH_IN, 1, 58, "clip", "CLIP")
    sg.link(SUBGRAPH_IN, 1, 59, "clip", "CLIP")
    sg.link(SUBGRAPH_IN, 2, 70, "vae", "VAE")
    text_link = sg.link(SUBGRAPH_IN, 3, 58, "text", "STRING", widget=True)
    seed_link = sg.link(SUBGRAPH_IN, 4, 61, "seed", "INT", widget=True)
    sg.link(58, 0, 61, "positive", "CONDITIONING")
    sg.link(59, 0, 61, "negative", "CONDITIONING")
    sg.link(60, 0, 61, "latent_image", "LATENT")
    sg.nodes[70]["inputs"].insert(0, {"name": "samples", "type": "LATENT", "link": None})
    samples = sg.link(61, 0, 70, "samples", "LATENT")
    sg.nodes[70]["inputs"] = [{"name": "samples", "type": "LATENT", "link": samples},
                              {"name": "vae", "type": "VAE", "link": 4}]
    for lk in sg.links:  # the nested instance's inputs are slots 0 (samples) and 1 (vae)
        if lk["target_id"] == 70:
            lk["target_slot"] = 0 if lk["type"] == "LATENT" else 1
    out_link = sg.link(70, 0, SUBGRAPH_OUT, "0", "IMAGE")
    definition = {
        "id": SUBGRAPH_ID, "name": "Text to image", "nodes": list(sg.nodes.values()), "links": sg.links,
        "inputs": [{"id": "s0", "name": "model", "type": "MODEL", "linkIds": [1]},
                   {"id": "s1", "name": "clip", "type": "CLIP", "linkIds": [2, 3]},
                   {"id": "s2", "name": "vae", "type": "VAE", "linkIds": [4]},
                   {"id": "s3", "name": "text", "type": "STRING", "linkIds": [text_link]},
                   {"id": "s4", "name": "seed", "type": "INT", "linkIds": [seed_link]}],
        "outputs": [{"id": "so", "name": "IMAGE", "type": "IMAGE", "linkIds": [out_link]}], "widgets": []}

    root = UI(objects=True)
    root.node(1, "CheckpointLoaderSimple", [ckpt])
    root.node(75, SUBGRAPH_ID)
    root.nodes[75]["outputs"] = [{"name": "IMAGE", "type": "IMAGE", "links": []}]
    root.node(9, "SaveImage", ["z-image"])
    root.link(1, 0, 75, "model", "MODEL")
    root.link(1, 1, 75, "clip", "CLIP")
    root.link(1, 2, 75, "vae", "VAE")
    root.nodes[75]["inputs"] += [{"name": "text", "type": "STRING", "link": None, "widget": {"name": "text"}},
                                 {"name": "seed", "type": "INT", "link": None, "widget": {"name": "seed"}}]
    if prompt is not None:
        root.nodes[75]["widgets_values"] = [prompt, seed, "randomize"]
    root.link(75, 0, 9, "images", "IMAGE")
    return root.workflow(definitions={"subgraphs": [definition, inner_def]})

"""Talking to ComfyUI servers: one endpoint (:class:`ComfyClient`) or many (:class:`EndpointPool`)."""

from .client import ComfyClient, OutputImage, RunOutput, Timings
from .events import Event
from .remote import PromptVanished, ServerInfo

__all__ = ["ComfyClient", "RunOutput", "OutputImage", "Timings", "Event", "PromptVanished", "ServerInfo"]

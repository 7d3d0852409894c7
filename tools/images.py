"""Image files: PNGs written atomically with provenance, and small thumbnails for agents.

Provenance lives in PNG ``tEXt``/``iTXt`` chunks, as ComfyUI writes it: ``prompt`` holds the API graph
(so dropping the file onto ComfyUI reloads the flow), ``comfygen`` holds our JSON (run id, flow id,
prompt, seed, scores...). When ComfyUI already produced PNG bytes we add the chunks to those bytes
without re-encoding the pixels (cheap: no zlib work), replacing chunks with the same keyword.

Writes go to a temporary file in the target folder, are fsync'ed, then ``os.replace``d into place, so
a crash or kill leaves either the old file, the new one, or nothing, never half a PNG (temp files of
a killed writer are swept by :func:`comfygen.tools.files.remove_stale_temp`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from .files import write_atomic
from .store import OutputFile

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = {b"tEXt", b"iTXt", b"zTXt"}


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG (bad signature)")
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError("truncated PNG chunk")
        out.append((ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    if not out or out[0][0] != b"IHDR" or out[-1][0] != b"IEND":
        raise ValueError("PNG is missing IHDR or IEND")
    return out


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _text_keyword(ctype: bytes, body: bytes) -> str | None:
    if ctype not in _TEXT_CHUNKS:
        return None
    return body.split(b"\0", 1)[0].decode("latin-1")


def _text_chunk(key: str, value: str) -> bytes:
    """tEXt for latin-1 text, iTXt (UTF-8, uncompressed) otherwise."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def add_png_text(data: bytes, text: dict[str, Any]) -> bytes:
    """PNG bytes with text chunks set (same keyword replaced); values that are not str are JSON-encoded."""
    chunks = [(t, b) for t, b in _chunks(data) if _text_keyword(t, b) not in text]
    parts = [PNG_SIGNATURE]
    for i, (ctype, body) in enumerate(chunks):
        if i == len(chunks) - 1:  # before IEND
            parts += [_text_chunk(k, _as_text(v)) for k, v in text.items()]
        parts.append(_chunk(ctype, body))
    return b"".join(parts)


def read_png_text(source: bytes | Path | str) -> dict[str, str]:
    """The text chunks of a PNG (tEXt, iTXt, zTXt) as keyword -> str."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    out: dict[str, str] = {}
    for ctype, body in _chunks(data):
        if ctype == b"tEXt":
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif ctype == b"zTXt":
            k, rest = body.split(b"\0", 1)
            out[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif ctype == b"iTXt":
            k, rest = body.split(b"\0", 1)
            flag = rest[0]  # rest[1] is the compression method (0 = zlib, the only one)
            _lang, rest = rest[2:].split(b"\0", 1)
            _tkey, value = rest.split(b"\0", 1)
            out[k.decode("latin-1")] = (zlib.decompress(value) if flag else value).decode("utf-8")
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, without decoding pixels."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def encode_png(image: Image.Image, compress_level: int = 4) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_png_atomic(image: bytes | Image.Image, path: Path | str, provenance: dict[str, Any] | None = None, *,
                    durable: bool = True) -> OutputFile:
    """Write a PNG atomically with provenance text chunks; return its :class:`OutputFile` record.

    ``image``: PNG bytes (kept as they are, chunks added), other encoded image bytes, or a PIL image
    (encoded as PNG). ``provenance``: keyword -> value (dicts/lists are JSON-encoded), e.g.
    ``{"prompt": api_graph, "comfygen": {...}}``.
    """
    path = Path(path)
    if isinstance(image, Image.Image):
        data = encode_png(image)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data.startswith(PNG_SIGNATURE):
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                data = encode_png(im)
    else:
        raise TypeError(f"save_png_atomic wants PNG bytes or a PIL image, not {type(image).__name__}")
    if provenance:
        data = add_png_text(data, provenance)
    width, height = png_size(data)
    write_atomic(path, data, durable=durable)
    return OutputFile(path=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                      width=width, height=height)


def update_png_text(path: Path | str, text: dict[str, Any], *, merge_json_key: str | None = "comfygen") -> OutputFile:
    """Rewrite a PNG's text chunks atomically (e.g. to add scores after scoring).

    When ``merge_json_key`` is in ``text`` and the file already has that chunk as a JSON object, the two
    objects are merged (new keys win) instead of replacing the chunk.
    """
    path = Path(path)
    data = path.read_bytes()
    if merge_json_key and isinstance(text.get(merge_json_key), dict):
        try:
            old = json.loads(read_png_text(data).get(merge_json_key, "{}"))
        except json.JSONDecodeError:
            old = {}
        if isinstance(old, dict):
            text = {**text, merge_json_key: {**old, **text[merge_json_key]}}
    return save_png_atomic(data, path, text)


def thumbnail(path: Path | str | bytes, max_side: int = 512, max_bytes: int = 300_000) -> tuple[bytes, str]:
    """A small preview within ``max_bytes``: WebP (or JPEG where Pillow lacks WebP). Returns (bytes, mime)."""
    src = io.BytesIO(path) if isinstance(path, bytes) else path
    with Image.open(src) as im:
        im.load()
        alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
        img = im.convert("RGBA" if alpha else "RGB")
    side = max_side
    fmt, mime = ("WEBP", "image/webp") if _has_webp() else ("JPEG", "image/jpeg")
    if fmt == "JPEG" and img.mode != "RGB":
        img = img.convert("RGB")
    last = b""
    while True:
        small = img.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        for quality in (85, 70, 55, 40):
            buf = io.BytesIO()
            small.save(buf, format=fmt, quality=quality)
            last = buf.getvalue()
            if len(last) <= max_bytes:
                return last, mime
        if side <= 16:
            raise ValueError(f"cannot fit a thumbnail in {max_bytes} bytes")
        side = max(16, int(side * 0.7))


_WEBP: bool | None = None


def _has_webp() -> bool:
    global _WEBP
    if _WEBP is None:
        from PIL import features

        _WEBP = bool(features.check("webp"))
    return _WEBP

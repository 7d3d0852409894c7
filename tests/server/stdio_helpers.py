"""A bare MCP stdio client for the fault tests: it can drop a session the way real clients do (close stdin,
SIGTERM, SIGKILL) and send ``notifications/cancelled``, which the SDK's client does not let a test choose."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def server_env(home: Path, url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": url, "COMFYGEN_SCORERS": ""}
    env.update(extra)
    return env


class RawServer:
    """``python -m comfygen.server`` over pipes, spoken to in JSON-RPC lines."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "comfygen.server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.next_id = 1
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "fault-test", "version": "0"}}, timeout=60)
        self.notify("notifications/initialized", {})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def start(self, method: str, params: dict[str, Any]) -> int:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def wait_reply(self, rid: int, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            try:
                msg = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no reply to request {rid}; server stderr:\n{''.join(self.stderr)}") from None
            if msg.get("id") == rid and ("result" in msg or "error" in msg):
                return msg

    def request(self, method: str, params: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        return self.wait_reply(self.start(method, params), timeout)

    def call(self, tool: str, args: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        return self.request("tools/call", {"name": tool, "arguments": args}, timeout)["result"]

    def end(self, how: str, timeout: float = 15) -> int:
        """End the session: 'close' (stdin closed, what clients do first), 'sigint', 'sigterm' or 'sigkill'."""
        if how == "close":
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        else:
            self.proc.send_signal({"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how])
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)

"""The VLM grader against a local fake OpenAI-compatible chat completions server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from scoring_helpers import images

from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.registry import build_scorer
from comfygen.tools.scoring.vlm import ASPECTS, VLMGrader, parse_grading


def grading(overall: float, accuracy: float = 7.0) -> dict:
    g = {a: {"explanation": f"about {a}", "score": 6.0} for a in ASPECTS}
    g["overall_score"]["score"] = overall
    g["accuracy_to_prompt"]["score"] = accuracy
    return g


class FakeOpenAI:
    """Speaks POST /v1/chat/completions. ``answers``: a function of the request body -> message content."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                content = outer.answer(body)
                resp = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                data = json.dumps(resp).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(answer):
        s = FakeOpenAI(answer)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _prompt_of(body: dict) -> str:
    return next(c["text"] for c in body["messages"][1]["content"] if c["type"] == "text")


def test_grades_each_image_in_order_and_sends_rubric_and_image(fake):
    # the score depends on the prompt so order mix-ups (concurrent requests) would show
    server = fake(lambda body: json.dumps(grading(float(len(_prompt_of(body)) % 10))))
    g = VLMGrader(base_url=server.url, model="qwen-vl", api_key="k", batch_size=3)
    prompts = ["a", "bb", "ccc", "dddd"]
    out = g.score(images(4), prompts)
    expected = [float(len(f"Prompt: {p}\nGrade this image. Answer with the JSON object only.") % 10) for p in prompts]
    assert out.tolist() == expected
    body = server.requests[0]["body"]
    assert body["model"] == "qwen-vl" and body["response_format"] == {"type": "json_object"}
    assert "accuracy_to_prompt" in body["messages"][0]["content"] and "JSON" in body["messages"][0]["content"]
    image_part = body["messages"][1]["content"][0]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert server.requests[0]["auth"] == "Bearer k"
    assert len(g.last_gradings) == 1  # last batch of the 3+1 split
    assert g.last_gradings[0].overall_score.explanation == "about overall_score"


def test_other_aspect_and_fenced_json(fake):
    server = fake(lambda body: "Sure!\n```json\n" + json.dumps(grading(5.0, accuracy=9.5)) + "\n```")
    g = VLMGrader(base_url=server.url, aspect="accuracy_to_prompt")
    assert g.score(images(1), ["a cat"]).tolist() == [9.5]


def test_unparsable_answer_is_retried_then_raises(fake):
    answers = iter(["no json here", json.dumps(grading(8.0))])
    server = fake(lambda body: next(answers))
    assert VLMGrader(base_url=server.url).score(images(1), ["p"]).tolist() == [8.0]
    assert len(server.requests) == 2
    bad = fake(lambda body: "I cannot grade this image.")
    with pytest.raises(ScoringError, match="no JSON object"):
        VLMGrader(base_url=bad.url).score(images(1), ["p"])


def test_endpoint_down_raises_with_hint():
    g = VLMGrader(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(ScoringError, match="VLM endpoint") as e:
        g.score(images(1), ["p"])
    assert "COMFYGEN_VLM_URL" in str(e.value)


def test_off_by_default():
    g = build_scorer("vlm")
    with pytest.raises(ScoringError, match="off"):
        g.load()


def test_configured_from_env(fake, monkeypatch):
    server = fake(lambda body: json.dumps(grading(3.0)))
    monkeypatch.setenv("COMFYGEN_VLM_URL", server.url)
    monkeypatch.setenv("COMFYGEN_VLM_MODEL", "my-vlm")
    assert build_scorer("vlm").score(images(1), ["p"]).tolist() == [3.0]
    assert server.requests[0]["body"]["model"] == "my-vlm"


def test_parse_grading_variants():
    assert parse_grading(json.dumps(grading(7.5))).overall_score.score == 7.5
    bare = {a: 4 for a in ASPECTS}  # numbers instead of {explanation, score}
    assert parse_grading("result: " + json.dumps(bare) + " done").overall_score.score == 4.0
    with pytest.raises(ScoringError, match="not the rubric"):
        parse_grading(json.dumps({"overall_score": {"score": 5}}))
    with pytest.raises(ScoringError):
        parse_grading(json.dumps(grading(11.0)))  # out of the 0-10 range
    with pytest.raises(ScoringError):
        VLMGrader(base_url="http://x", aspect="beauty")

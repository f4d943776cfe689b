"""An LLM judge: a client for any OpenAI-compatible chat-completions endpoint, with every response
cached on disk, plus the MM-Vet grader (its official prompt, score parsing and aggregation).

Configuration (first found wins): task options ``judge_url``, ``judge_model``, ``judge_key``,
``judge_cache``; environment ``MMEVAL_JUDGE_URL``, ``MMEVAL_JUDGE_MODEL``, ``MMEVAL_JUDGE_KEY``
(or ``OPENAI_API_KEY``), and ``MMEVAL_CACHE`` (the mmeval cache root; judge responses go to its
``judge/`` folder). The default cache is ``~/.cache/mmeval/judge``.

The cache key is the SHA-256 of the request body (model, messages, temperature, max_tokens, ...;
never the API key or URL), so a rerun with the same predictions sends no request at all. Only
the standard library is used (``urllib``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmeval.errors import MMEvalError

JUDGE_OPTIONS = ("judge_url", "judge_model", "judge_key", "judge_cache")


class JudgeError(MMEvalError):
    """The judge endpoint could not be reached or answered something unusable."""


def default_cache_dir() -> Path:
    root = os.environ.get("MMEVAL_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mmeval"
    return base / "judge"


def chat_url(url: str) -> str:
    """Accept a base URL ('http://host/v1') or the full chat-completions URL."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def request_key(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class JudgeClient:
    """Chat completions with an on-disk cache. `calls` counts requests actually sent."""

    url: str
    model: str
    key: str | None = None
    cache_dir: Path | None = None
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 2.0

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        self.calls = 0
        self._lock = threading.Lock()

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def cached(self, body: Mapping[str, Any]) -> str | None:
        path = self._cache_path(request_key(body))
        if path.is_file():
            try:
                return json.loads(path.read_text())["content"]
            except (ValueError, KeyError):
                return None  # a damaged entry is simply asked again
        return None

    def _store(self, body: Mapping[str, Any], content: str, raw: Any) -> None:
        path = self._cache_path(request_key(body))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"request": body, "content": content, "response": raw}, f, ensure_ascii=False)
        os.replace(tmp, path)

    def chat(self, messages: Sequence[Mapping[str, str]], temperature: float = 0.0,
             max_tokens: int | None = None, **extra: Any) -> str:
        """The first choice's message content (cached)."""
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                "temperature": temperature}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        body.update(extra)
        hit = self.cached(body)
        if hit is not None:
            return hit
        raw = self._post(body)
        try:
            content = raw["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge {self.url}: unexpected response (no choices[0].message.content): "
                             f"{json.dumps(raw)[:200]}") from exc
        self._store(body, content, raw)
        return content

    def ask(self, prompt: str, temperature: float = 0.0, max_tokens: int | None = None, **extra: Any) -> str:
        return self.chat([{"role": "user", "content": prompt}], temperature, max_tokens, **extra)

    def _post(self, body: Mapping[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(chat_url(self.url), data=data, headers=headers, method="POST")
            try:
                with self._lock:
                    self.calls += 1
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
                if exc.code not in (408, 409, 429) and exc.code < 500:
                    break  # a client error will not go away by asking again
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))
        raise JudgeError(f"judge {chat_url(self.url)} failed ({last})")


def judge_from_options(options: Mapping[str, str], default_model: str | None = None,
                       env: Mapping[str, str] | None = None) -> JudgeClient | None:
    """A client from task options or the environment; None when no endpoint URL is configured."""
    env = os.environ if env is None else env
    url = options.get("judge_url") or env.get("MMEVAL_JUDGE_URL")
    if not url:
        return None
    model = options.get("judge_model") or env.get("MMEVAL_JUDGE_MODEL") or default_model
    if not model:
        raise JudgeError("a judge endpoint is set but no model: pass --task-args judge_model=NAME "
                         "or set MMEVAL_JUDGE_MODEL")
    key = options.get("judge_key") or env.get("MMEVAL_JUDGE_KEY") or env.get("OPENAI_API_KEY")
    cache = options.get("judge_cache")
    cache_dir = Path(cache).expanduser() if cache else None
    if cache_dir is None and env.get("MMEVAL_CACHE"):
        cache_dir = Path(env["MMEVAL_CACHE"]).expanduser() / "judge"
    return JudgeClient(url=url, model=model, key=key or None, cache_dir=cache_dir)


def split_judge_options(options: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(judge options, the rest)."""
    judge = {k: v for k, v in options.items() if k in JUDGE_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in JUDGE_OPTIONS}
    return judge, rest


# --------------------------------------------------------------------------------------------
# MM-Vet grader
# --------------------------------------------------------------------------------------------

_MMVET_INTRO = (
    "Compare the ground truth and prediction from AI models, to give a correctness score for the "
    "prediction. <AND> in the ground truth means it is totally right only when all elements in the "
    "ground truth are present in the prediction, and <OR> means it is totally right when any one "
    "element in the ground truth is present in the prediction. The correctness score is 0.0 "
    "(totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just "
    "complete the last space of the correctness score."
)
_MEME_GT = (
    "This meme is poking fun at the fact that the names of the countries Iceland and Greenland are "
    "misleading. Despite its name, Iceland is known for its beautiful green landscapes, while "
    "Greenland is mostly covered in ice and snow. The meme is saying that the person has trust "
    "issues because the names of these countries do not accurately represent their landscapes."
)
_MMVET_SHOTS = (
    ("What is x in the equation?", "-1 <AND> -5", "x = 3", "0.0"),
    ("What is x in the equation?", "-1 <AND> -5", "x = -1", "0.5"),
    ("What is x in the equation?", "-1 <AND> -5", "x = -5", "0.5"),
    ("What is x in the equation?", "-1 <AND> -5", "x = -5 or 5", "0.5"),
    ("What is x in the equation?", "-1 <AND> -5", "x = -1 or x = -5", "1.0"),
    ("Can you explain this meme?", _MEME_GT,
     "The meme talks about Iceland and Greenland. It's pointing out that despite their names, "
     "Iceland is not very icy and Greenland isn't very green.", "0.4"),
    ("Can you explain this meme?", _MEME_GT,
     "The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. "
     "Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice "
     "and snow. The text 'This is why I have trust issues' is a playful way to suggest that these "
     "contradictions can lead to distrust or confusion. The humor in this meme is derived from the "
     "unexpected contrast between the names of the countries and their actual physical "
     "characteristics.", "1.0"),
)


def mmvet_few_shot(style: str = "official") -> str:
    """The grader's instructions and few-shot table. The official evaluator (mm-vet_evaluator.py)
    puts a blank line after the instructions and heads the table 'Question'; lmms-eval's copy has no
    blank line and heads it 'gpt_query_prompt'."""
    head = "Question" if style == "official" else "gpt_query_prompt"
    sep = "\n\n" if style == "official" else "\n"
    rows = "".join(f"{q} | {g} | {p} | {s}\n" for q, g, p, s in _MMVET_SHOTS)
    return f"{_MMVET_INTRO}{sep}{head} | Ground truth | Prediction | Correctness\n--- | --- | --- | ---\n{rows}"


def mmvet_query(question: str, answer: str, prediction: str, style: str = "official",
                digit_hint: bool = False) -> str:
    gt = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    if style == "official":
        text = mmvet_few_shot(style) + "\n" + " | ".join([question, gt, prediction, ""])
        if digit_hint:
            text += "\nPredict the correctness of the answer (digit): "
        return text
    return f"{mmvet_few_shot(style)}\n{question} | {gt} | {prediction} |"


def parse_mmvet_score(content: str) -> float | None:
    """The first space-separated token as a number in [0, 1], else None."""
    try:
        score = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def grade_mmvet(client: JudgeClient, question: str, answer: str, prediction: str,
                style: str = "official") -> tuple[float, str]:
    """(score in [0, 1], raw judge content).

    official: max_tokens 3 at temperature 0; if the reply is not a score, ask again with the
    'Predict the correctness of the answer (digit)' suffix, raising the temperature by 0.5 each
    time; after five tries the score is 0.0.
    lmms-eval: max_tokens 128 at temperature 0; on an unparsable reply retry with the temperature
    raised by 0.5 until it reaches 2, then 0.0; an empty reply scores 0.0."""
    if style == "official":
        content = client.ask(mmvet_query(question, answer, prediction, style), temperature=0.0, max_tokens=3)
        temperature, tries = 0.0, 1
        while True:
            score = parse_mmvet_score(content)
            if score is not None:
                return score, content
            if tries >= 5:
                return 0.0, content
            content = client.ask(mmvet_query(question, answer, prediction, style, digit_hint=True),
                                 temperature=temperature, max_tokens=3)
            tries += 1
            temperature += 0.5
    temperature = 0.0
    while True:
        content = client.ask(mmvet_query(question, answer, prediction, style), temperature=temperature,
                             max_tokens=128).strip()
        if not content:
            return 0.0, content
        score = parse_mmvet_score(content)
        if score is not None:
            return score, content
        temperature += 0.5
        if temperature >= 2:
            return 0.0, content


MMVET_CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")


def mmvet_aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Total and per-capability scores in percent (rows: 'score' in [0, 1] and 'capability', a
    list of capability names): a capability's score is the mean score of the samples that need it;
    also the capability-integration scores ('int/<caps joined by _>')."""
    if not rows:
        return {}
    out = {"total": sum(float(r["score"]) for r in rows) / len(rows) * 100}
    for cap in MMVET_CAPABILITIES:
        part = [float(r["score"]) for r in rows if cap in r["capability"]]
        if part:
            out[cap] = sum(part) / len(part) * 100
    combos: dict[str, list[float]] = {}
    for r in rows:
        name = "_".join(sorted(r["capability"]))
        combos.setdefault(name, []).append(float(r["score"]))
    for name, scores in sorted(combos.items()):
        out[f"int/{name}"] = sum(scores) / len(scores) * 100
    return out


class JudgedTask:
    """Mixin for a Task graded (or helped) by an LLM judge: takes the judge_* task options and
    builds one client per protocol, with the protocol's default judge model (`judge_models`)."""

    judge_models: dict[str, str] = {}

    def __init__(self, **options: str) -> None:
        judge, rest = split_judge_options(options)
        super().__init__(**rest)
        self.judge_options = judge
        self._judges: dict[str, JudgeClient | None] = {}

    def judge(self, protocol: str) -> JudgeClient | None:
        if protocol not in self._judges:
            self._judges[protocol] = judge_from_options(self.judge_options, self.judge_models.get(protocol))
        return self._judges[protocol]

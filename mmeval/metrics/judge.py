"""An LLM judge: a client for any OpenAI-compatible chat-completions endpoint, with every response
cached on disk, plus the MM-Vet grader (its official prompt, score parsing and aggregation).

Configuration (first found wins): task options ``judge_url``, ``judge_model``, ``judge_key``,
``judge_cache``; environment ``MMEVAL_JUDGE_URL``, ``MMEVAL_JUDGE_MODEL``, ``MMEVAL_JUDGE_KEY``
(or ``OPENAI_API_KEY``), and ``MMEVAL_CACHE`` (the mmeval cache root; judge responses go to its
``judge/`` folder). The default cache is ``~/.cache/mmeval/judge``. Limits (task options):
``judge_timeout`` (seconds per request, default 30), ``judge_deadline`` (seconds for a whole
grading pass, default 1800) and ``judge_max_failures`` (failed requests in a row that stop the
pass, default 3): a judge that never answers or refuses connections costs at most that, and the
samples it did not grade stay pending (`grade_pending`), gradable later by `mmeval score`.

The cache key is the SHA-256 of the request body (model, messages, temperature, max_tokens, ...;
never the API key or URL), so a rerun with the same predictions sends no request at all. Keys
never leave the client: a URL shown in a message has its user info and query values (all but
``api-version``) replaced by ``***``, and the key and those values are scrubbed from any text a
server sent back. A URL's query string is kept when ``/chat/completions`` is added to its path.
Only the standard library is used (``urllib``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mmeval.errors import MMEvalError
from mmeval.types import SampleRecord

JUDGE_OPTIONS = ("judge_url", "judge_model", "judge_key", "judge_cache", "judge_timeout", "judge_deadline",
                 "judge_max_failures")
DEFAULT_TIMEOUT_S = 30.0  # per request; a grade is a few tokens, an answer takes seconds
DEFAULT_DEADLINE_S = 1800.0  # per grading pass (MM-Vet's 218 samples take minutes)
DEFAULT_MAX_FAILURES = 3  # failed requests in a row before the rest is left pending
SHOWN_QUERY_KEYS = frozenset({"api-version", "api_version"})  # query values that are not secrets


class JudgeError(MMEvalError):
    """The judge endpoint could not be reached or answered something unusable."""


class JudgeUnavailable(JudgeError):
    """The grading pass stops: too many failed requests in a row, or its deadline passed."""


def default_cache_dir() -> Path:
    root = os.environ.get("MMEVAL_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mmeval"
    return base / "judge"


def chat_url(url: str) -> str:
    """Accept a base URL ('http://host/v1') or the full chat-completions URL; a query string
    ('?api-version=...&api-key=...') stays after the path."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return urlunsplit(parts._replace(path=path))


def _query_pieces(query: str) -> list[tuple[str, str, str]]:
    return [piece.partition("=") for piece in query.split("&") if piece]


def redact_url(url: str) -> str:
    """The URL as it may be shown or written: user info and query values (but `api-version`) as ***."""
    parts = urlsplit(url)
    netloc = parts.netloc if "@" not in parts.netloc else "***@" + parts.netloc.rsplit("@", 1)[1]
    query = "&".join(f"{k}={v}" if unquote(k).lower() in SHOWN_QUERY_KEYS else (f"{k}=***" if sep else "***")
                     for k, sep, v in _query_pieces(parts.query))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_secrets(url: str) -> list[str]:
    """What `redact_url` hides, as written and unquoted (to scrub from other text)."""
    parts = urlsplit(url)
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, *userinfo.split(":", 1)]
    for k, sep, v in _query_pieces(parts.query):
        if unquote(k).lower() not in SHOWN_QUERY_KEYS:
            found += [v, unquote(v)] if sep else [k, unquote(k)]
    return [f for f in found if len(f) >= 4]  # shorter values would scrub ordinary words


def redact_options(options: Mapping[str, str]) -> dict[str, str]:
    """Task options as results files record them: the key hidden, the URL redacted."""
    out = dict(options)
    if out.get("judge_key"):
        out["judge_key"] = "***"
    if out.get("judge_url"):
        out["judge_url"] = redact_url(out["judge_url"])
    return out


class CircuitBreaker:
    """Stops a grading pass: after `max_failures` failed requests in a row, or once `deadline_s`
    (counted from the first request) has passed. Open, every request raises JudgeUnavailable."""

    def __init__(self, max_failures: int = DEFAULT_MAX_FAILURES, deadline_s: float | None = None):
        self.max_failures, self.deadline_s = max_failures, deadline_s
        self.reason: str | None = None
        self._failures = 0
        self._started: float | None = None
        self._lock = threading.Lock()

    def before_request(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._started is None:
                self._started = now
            if self.reason is None and self.deadline_s is not None and now - self._started >= self.deadline_s:
                self.reason = f"its grading deadline of {self.deadline_s:g} s passed"
            if self.reason is not None:
                raise JudgeUnavailable(self.reason)

    def remaining(self) -> float:
        """Seconds left before the deadline (infinite without one)."""
        if self.deadline_s is None or self._started is None:
            return float("inf")
        return max(0.0, self.deadline_s - (time.monotonic() - self._started))

    def success(self) -> None:
        with self._lock:
            self._failures = 0

    def failure(self, what: str) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.max_failures and self.reason is None:
                self.reason = f"{self._failures} requests in a row failed, the last with {what}"


def request_key(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class JudgeClient:
    """Chat completions with an on-disk cache. `calls` counts requests actually sent.

    A request gets `timeout` seconds and is retried `retries` times (backoff 1 s, 2 s, ...) when the
    failure may pass (a timeout, HTTP 408/409/429/5xx, a dropped connection), not when it will not
    (a refused connection, another 4xx). With a `breaker`, every failed request counts towards it
    and an open breaker stops the client at once. `deadline_s` and `max_failures` are the limits of
    a grading pass (`grade_pending`)."""

    url: str
    model: str
    key: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = 2
    backoff: float = 1.0
    breaker: CircuitBreaker | None = field(default=None, repr=False)
    deadline_s: float | None = DEFAULT_DEADLINE_S
    max_failures: int = DEFAULT_MAX_FAILURES

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return chat_url(self.url)

    @property
    def shown_url(self) -> str:
        """The endpoint as messages and files show it (secrets as ***)."""
        return redact_url(self.endpoint)

    def scrub(self, text: str) -> str:
        """`text` with the endpoint redacted and the key and URL secrets replaced by ***."""
        text = text.replace(self.endpoint, self.shown_url).replace(self.url, redact_url(self.url))
        for secret in sorted({*url_secrets(self.url), *([self.key] if self.key else [])}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def guarded(self, breaker: CircuitBreaker) -> JudgeClient:
        """The same endpoint and cache, counting failures on `breaker`."""
        return replace(self, breaker=breaker)

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
            if self.breaker is not None:
                self.breaker.failure("an unexpected response")
            raise JudgeError(self.scrub(f"judge {self.shown_url}: unexpected response (no choices[0].message.content): "
                                        f"{json.dumps(raw)[:200]}")) from exc
        self._store(body, content, raw)
        return content

    def ask(self, prompt: str, temperature: float = 0.0, max_tokens: int | None = None, **extra: Any) -> str:
        return self.chat([{"role": "user", "content": prompt}], temperature, max_tokens, **extra)

    def _post(self, body: Mapping[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        breaker, last = self.breaker, ""
        for attempt in range(self.retries + 1):
            timeout = self.timeout
            if breaker is not None:
                breaker.before_request()
                timeout = max(0.05, min(timeout, breaker.remaining()))
            req = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
            try:
                with self._lock:
                    self.calls += 1
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    raw = json.loads(resp.read().decode())
                if breaker is not None:
                    breaker.success()
                return raw
            except urllib.error.HTTPError as exc:
                last, again = f"HTTP {exc.code}: {_error_body(exc)!r}", exc.code in (408, 409, 429) or exc.code >= 500
            except urllib.error.URLError as exc:  # could not connect: the reason says why
                reason = exc.reason
                last = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else f"{reason}"
                again = isinstance(reason, TimeoutError) or not isinstance(reason, OSError)  # not: refused, DNS
            except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
                last, again = f"{type(exc).__name__}: {exc}", not isinstance(exc, ConnectionRefusedError)
            last = self.scrub(last)
            if breaker is not None:
                breaker.failure(last)
                if breaker.reason is not None:
                    raise JudgeUnavailable(breaker.reason)
            if not again:
                break  # a refused connection or a client error will not go away by asking again
            if attempt < self.retries:
                pause = self.backoff * (2 ** attempt)
                time.sleep(min(pause, breaker.remaining()) if breaker is not None else pause)
        raise JudgeError(f"judge {self.shown_url} failed ({last})")


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()[:200]
    except Exception:  # noqa: BLE001 - the body of an error response is only for the message
        return b""


def _positive(options: Mapping[str, str], name: str, default: float, kind: type = float) -> Any:
    text = options.get(name)
    if text is None or str(text).strip() == "":
        return kind(default)
    try:
        value = kind(str(text).strip())
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):  # NaN fails too
        raise JudgeError(f"task option {name}={text}: expected a positive {'whole ' if kind is int else ''}number")
    return value


def _check_url(url: str) -> None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JudgeError(f"judge URL {redact_url(url)}: expected http(s)://host[:port]/path, e.g. http://localhost:8000/v1")


def check_judge_options(options: Mapping[str, str], env: Mapping[str, str] | None = None) -> None:
    """Fail at once (not after answering) on a judge URL that is not http(s), or a judge_timeout,
    judge_deadline or judge_max_failures that is not a positive number."""
    env = os.environ if env is None else env
    _positive(options, "judge_timeout", DEFAULT_TIMEOUT_S)
    _positive(options, "judge_deadline", DEFAULT_DEADLINE_S)
    _positive(options, "judge_max_failures", DEFAULT_MAX_FAILURES, int)
    url = options.get("judge_url") or env.get("MMEVAL_JUDGE_URL")
    if url:
        _check_url(url)


def judge_from_options(options: Mapping[str, str], default_model: str | None = None,
                       env: Mapping[str, str] | None = None) -> JudgeClient | None:
    """A client from task options or the environment; None when no endpoint URL is configured.
    The client counts its failures on a breaker without deadline (a task that asks the judge while
    answering, as MMBench does, stops asking after `judge_max_failures` failures in a row)."""
    env = os.environ if env is None else env
    timeout = _positive(options, "judge_timeout", DEFAULT_TIMEOUT_S)
    deadline = _positive(options, "judge_deadline", DEFAULT_DEADLINE_S)
    max_failures = _positive(options, "judge_max_failures", DEFAULT_MAX_FAILURES, int)
    url = options.get("judge_url") or env.get("MMEVAL_JUDGE_URL")
    if not url:
        return None
    _check_url(url)
    model = options.get("judge_model") or env.get("MMEVAL_JUDGE_MODEL") or default_model
    if not model:
        raise JudgeError("a judge endpoint is set but no model: pass --task-args judge_model=NAME "
                         "or set MMEVAL_JUDGE_MODEL")
    key = options.get("judge_key") or env.get("MMEVAL_JUDGE_KEY") or env.get("OPENAI_API_KEY")
    cache = options.get("judge_cache")
    cache_dir = Path(cache).expanduser() if cache else None
    if cache_dir is None and env.get("MMEVAL_CACHE"):
        cache_dir = Path(env["MMEVAL_CACHE"]).expanduser() / "judge"
    return JudgeClient(url=url, model=model, key=key or None, cache_dir=cache_dir, timeout=timeout,
                       deadline_s=deadline, max_failures=max_failures, breaker=CircuitBreaker(max_failures))


def grade_pending(records: Sequence[SampleRecord], grade_one: Callable[[JudgeClient, SampleRecord], dict[str, Any]],
                  client: JudgeClient, task: str, log: Callable[[str], None]) -> list[SampleRecord]:
    """Grade the records whose scores say `pending` (errored ones are skipped) with `grade_one`
    (client, record) -> the scores to add, under a fresh breaker with the client's deadline and
    failure limit. A sample the judge fails on stays pending with its `judge_error`; once the
    breaker opens, the rest stay pending untouched. One line says what happened."""
    todo = [i for i, r in enumerate(records) if r.error is None and r.scores.get("pending")]
    out = list(records)
    if not todo:
        return out
    guarded = client.guarded(CircuitBreaker(client.max_failures, client.deadline_s))
    graded, failed, stopped = 0, [], None
    for i in todo:
        rec = out[i]
        try:
            update = grade_one(guarded, rec)
        except JudgeUnavailable as exc:
            stopped = str(exc)
            break
        except JudgeError as exc:
            error = guarded.scrub(str(exc))
            out[i] = replace(rec, scores={**rec.scores, "judge_error": error})
            failed.append(f"{rec.doc_id}: {error}")
            continue
        scores = {k: v for k, v in rec.scores.items() if k != "judge_error"}
        scores.update(update)
        out[i] = replace(rec, scores=scores)
        graded += 1
    left = len(todo) - graded
    later = (f"grade them later with `mmeval score --task {task} --predictions <run folder>/{task}.samples.jsonl "
             "--task-args judge_url=...`")
    if stopped is not None:
        log(f"{task}: judge {guarded.shown_url} stopped: {stopped}; {left} of {len(todo)} samples left pending "
            f"(their answers are saved): {later}")
    elif failed:
        log(f"{task}: {len(failed)} of {len(todo)} samples left pending after judge errors (e.g. {failed[0]}); {later}")
    else:
        log(f"{task}: graded {graded} samples with judge {client.model} ({guarded.calls} requests sent, the rest "
            "from the cache)")
    return out


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
    builds one client per protocol, with the protocol's default judge model (`judge_models`).
    The judge options are recorded redacted and are not part of the run fingerprint (grading
    comes after the answers)."""

    judge_models: dict[str, str] = {}

    def __init__(self, **options: str) -> None:
        judge, rest = split_judge_options(options)
        super().__init__(**rest)
        check_judge_options(judge)
        self.judge_options = judge
        self._judges: dict[str, JudgeClient | None] = {}

    def judge(self, protocol: str) -> JudgeClient | None:
        if protocol not in self._judges:
            self._judges[protocol] = judge_from_options(self.judge_options, self.judge_models.get(protocol))
        return self._judges[protocol]

    def recorded_options(self) -> dict[str, str]:
        return redact_options(self.options)

    def identity_options(self) -> dict[str, str]:
        return {k: v for k, v in self.options.items() if k not in JUDGE_OPTIONS}

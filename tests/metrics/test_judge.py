"""The judge client against a local fake chat-completions endpoint: request shape, the on-disk
cache (a second run sends nothing), retries, configuration; and the MM-Vet grader."""

from __future__ import annotations

import pytest

from mmeval.metrics.judge import (
    JudgeClient,
    JudgeError,
    chat_url,
    grade_mmvet,
    judge_from_options,
    mmvet_aggregate,
    mmvet_few_shot,
    mmvet_query,
    parse_mmvet_score,
    split_judge_options,
)
from tests.fake_judge import fake_endpoint as _fake


def fake_endpoint(reply, status=200):
    return _fake(reply, status, full=True)


def test_chat_and_cache(tmp_path):
    with fake_endpoint(lambda body: "0.7") as (url, seen):
        client = JudgeClient(url=url, model="judge-1", key="sk-test", cache_dir=tmp_path)
        assert client.ask("grade this", max_tokens=3) == "0.7"
        assert len(seen) == 1 and seen[0]["path"] == "/v1/chat/completions"
        assert seen[0]["auth"] == "Bearer sk-test"
        assert seen[0]["body"] == {"model": "judge-1", "messages": [{"role": "user", "content": "grade this"}],
                                   "temperature": 0.0, "max_tokens": 3}
        # same request again, even from a new client: served from disk
        again = JudgeClient(url=url, model="judge-1", cache_dir=tmp_path)
        assert again.ask("grade this", max_tokens=3) == "0.7"
        assert len(seen) == 1 and again.calls == 0
        # a different request (temperature) is a different cache entry
        assert again.ask("grade this", temperature=0.5, max_tokens=3) == "0.7"
        assert len(seen) == 2
    assert len(list(tmp_path.rglob("*.json"))) == 2


def test_retries_then_error(tmp_path):
    # first answer is a 500, the retry succeeds
    with fake_endpoint(lambda body: "ok", status=lambda n: 500 if n == 1 else 200) as (url, seen):
        client = JudgeClient(url=url, model="m", cache_dir=tmp_path, backoff=0.0)
        assert client.ask("hi") == "ok" and len(seen) == 2
    # a 401 is not retried and ends in a one-line JudgeError
    with fake_endpoint(lambda body: "no", status=401) as (url, seen):
        client = JudgeClient(url=url, model="m", cache_dir=tmp_path, backoff=0.0)
        with pytest.raises(JudgeError, match="HTTP 401"):
            client.ask("other")
        assert len(seen) == 1
    assert not list((tmp_path).rglob("*.tmp"))


def test_unreachable_endpoint(tmp_path):
    client = JudgeClient(url="http://127.0.0.1:9/v1", model="m", cache_dir=tmp_path, retries=1, backoff=0.0, timeout=2)
    with pytest.raises(JudgeError, match="failed"):
        client.ask("x")


def test_configuration(tmp_path):
    assert chat_url("http://h/v1/") == "http://h/v1/chat/completions"
    assert chat_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert judge_from_options({}, "gpt", env={}) is None
    env = {"MMEVAL_JUDGE_URL": "http://e/v1", "MMEVAL_JUDGE_MODEL": "env-model", "OPENAI_API_KEY": "sk-o",
           "MMEVAL_CACHE": str(tmp_path)}
    c = judge_from_options({}, "default", env=env)
    assert (c.url, c.model, c.key, c.cache_dir) == ("http://e/v1", "env-model", "sk-o", tmp_path / "judge")
    c = judge_from_options({"judge_url": "http://o/v1", "judge_model": "opt", "judge_cache": str(tmp_path / "c")},
                           "default", env={**env, "MMEVAL_JUDGE_KEY": "sk-m"})
    assert (c.url, c.model, c.key, c.cache_dir) == ("http://o/v1", "opt", "sk-m", tmp_path / "c")
    assert judge_from_options({"judge_url": "http://o"}, "fallback", env={}).model == "fallback"
    with pytest.raises(JudgeError, match="no model"):
        judge_from_options({"judge_url": "http://o"}, None, env={})
    assert split_judge_options({"judge_url": "u", "x": "1"}) == ({"judge_url": "u"}, {"x": "1"})


def test_mmvet_prompt_and_parse():
    q = mmvet_query("What is 2+2?", "4<OR>four", "It is 4.", "official")
    assert q.startswith("Compare the ground truth") and "\n\nQuestion | Ground truth | Prediction | Correctness\n" in q
    assert q.endswith("\nWhat is 2+2? | 4 <OR> four | It is 4. | ")
    assert q.count("\n") == mmvet_few_shot().count("\n") + 1
    lq = mmvet_query("What is 2+2?", "4<AND>5", "4", "lmms-eval")
    assert "\ngpt_query_prompt | Ground truth" in lq and lq.endswith("\nWhat is 2+2? | 4 <AND> 5 | 4 |")
    assert parse_mmvet_score("0.6") == 0.6 and parse_mmvet_score("1.0 because") == 1.0
    assert parse_mmvet_score("1.5") is None and parse_mmvet_score("Correctness: 1") is None


def test_grade_mmvet_official_retries_with_digit_hint(tmp_path):
    def reply(body):
        text = body["messages"][0]["content"]
        return "0.8" if text.endswith("(digit): ") else "The prediction is right"

    with fake_endpoint(reply) as (url, seen):
        client = JudgeClient(url=url, model="gpt-4-0613", cache_dir=tmp_path)
        score, content = grade_mmvet(client, "Q?", "A", "pred", "official")
        assert (score, content) == (0.8, "0.8")
        assert [s["body"]["temperature"] for s in seen] == [0.0, 0.0]
        assert all(s["body"]["max_tokens"] == 3 for s in seen)

    with fake_endpoint(lambda body: "never a number") as (url, seen):
        client = JudgeClient(url=url, model="m", cache_dir=tmp_path / "b")
        assert grade_mmvet(client, "Q?", "A", "pred", "official")[0] == 0.0
        assert len(seen) == 5  # five tries, then 0.0
        assert [s["body"]["temperature"] for s in seen] == [0.0, 0.0, 0.5, 1.0, 1.5]

    with fake_endpoint(lambda body: "0.3") as (url, seen):
        client = JudgeClient(url=url, model="m", cache_dir=tmp_path / "c")
        assert grade_mmvet(client, "Q?", "A", "pred", "lmms-eval") == (0.3, "0.3")
        assert seen[0]["body"]["max_tokens"] == 128


def test_mmvet_aggregate_hand_worked():
    rows = [{"score": 1.0, "capability": ["rec", "know"]},
            {"score": 0.5, "capability": ["ocr"]},
            {"score": 0.0, "capability": ["rec"]},
            {"score": 0.3, "capability": ["ocr", "math"]}]
    m = mmvet_aggregate(rows)
    assert m["total"] == pytest.approx(45.0)
    assert m["rec"] == pytest.approx(50.0)
    assert m["ocr"] == pytest.approx(40.0)
    assert m["know"] == pytest.approx(100.0) and m["math"] == pytest.approx(30.0)
    assert "gen" not in m and "spat" not in m
    assert m["int/know_rec"] == pytest.approx(100.0) and m["int/ocr"] == pytest.approx(50.0)

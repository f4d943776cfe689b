"""The MM-Vet judge cannot stall a run or lose work: answers are on disk before the judge is asked,
grading has a per-request timeout, a failure limit and a deadline, what it could not grade stays
pending (one line says so) and `mmeval score` grades it later; keys never reach a file or a log.
Fake judges on local sockets only: one that answers, one that accepts and never answers, one that
refuses connections (issue 21: ~630 s per sample, 30 s of silent retries per sample, nothing on
disk after 400 s, a key in the samples file)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from mmeval.cli import main
from mmeval.errors import MMEvalError
from mmeval.metrics.judge import CircuitBreaker, JudgeClient, JudgeUnavailable, chat_url, judge_from_options, redact_url
from tasks.mmvet import MMVet
from tests.fake_judge import fake_endpoint, refused_endpoint, stalled_endpoint

N = 6
RIGHT = {"Yes", "2", "red", "A", "True"}  # the fake grader's rule: these mock answers score 1.0, others 0.0


@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def mmvet_data(tmp_path) -> Path:
    rows = [dict(question_id=f"v1_{i}", question=f"What is shown in picture {i}?", answer=f"thing {i}",
                 capability=["rec", "ocr"] if i % 2 else ["know"], image=Image.new("RGB", (6, 6), (40 * i, 9, 9)))
            for i in range(N)]
    MMVet.write_layout(tmp_path / "data" / "mmvet", rows)
    return tmp_path / "data"


def prediction_of(body: dict) -> str:
    """The prediction cell of the grader query's last table row."""
    last = body["messages"][0]["content"].rstrip().splitlines()[-1]
    return [c.strip() for c in last.split("|")][2]


def grader(body: dict) -> str:
    return "1.0" if prediction_of(body) in RIGHT else "0.0"


def run_mmvet(data: Path, out: Path, judge: str):
    return CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "mmvet", "--data", str(data), "--output",
                                     str(out), "--run-name", "r", "--no-progress", "--bootstrap", "0",
                                     "--task-args", judge])


def samples(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "r" / "mmvet.samples.jsonl").read_text().splitlines()]


def expected_total(lines: list[dict]) -> float:
    return 100 * sum(1.0 if s["prediction"] in RIGHT else 0.0 for s in lines) / len(lines)


def judge_lines(output: str) -> list[str]:
    return [x for x in output.splitlines() if x.startswith("mmvet: ")]


def test_answers_are_on_disk_before_the_judge_is_asked(mmvet_data, tmp_path):
    out = tmp_path / "out"
    on_disk_at_first_request: list[int] = []

    def reply(body):
        if not on_disk_at_first_request:
            path = out / "r" / "mmvet.samples.jsonl"
            on_disk_at_first_request.append(len(path.read_text().splitlines()) if path.exists() else 0)
        return grader(body)

    with fake_endpoint(reply) as (url, seen):
        r = run_mmvet(mmvet_data, out, f"mmvet.judge_url={url},mmvet.judge_cache={tmp_path / 'cache'}")
    assert r.exit_code == 0, r.output
    assert on_disk_at_first_request == [N] and len(seen) == N
    lines = samples(out)
    assert len(lines) == N and all(s["scores"]["pending"] == 0 for s in lines)  # graded lines replaced the pending
    res = json.loads((out / "r" / "mmvet.json").read_text())
    assert res["metrics"]["total"] == pytest.approx(expected_total(lines))
    assert judge_lines(r.output) == [f"mmvet: graded {N} samples with judge gpt-4-0613 ({N} requests sent, the rest "
                                     "from the cache)"]


def test_a_judge_that_never_answers_costs_seconds_and_loses_nothing(mmvet_data, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    with stalled_endpoint() as (url, accepted):
        started = time.monotonic()
        r = run_mmvet(mmvet_data, out, f"mmvet.judge_url={url},mmvet.judge_timeout=0.5,"
                                       f"mmvet.judge_max_failures=2,mmvet.judge_cache={cache}")
        elapsed = time.monotonic() - started
        assert len(accepted) == 2  # two requests (one retry) waited 0.5 s each; then the rest was left pending
    assert r.exit_code == 0, r.output
    assert elapsed < 60, elapsed  # was ~630 s per sample
    [line] = judge_lines(r.output)
    assert line.startswith(f"mmvet: judge {url}/chat/completions stopped: 2 requests in a row failed, the last with ")
    assert "timed out" in line and f"{N} of {N} samples left pending (their answers are saved)" in line
    assert "mmeval score --task mmvet" in line
    lines = samples(out)
    assert len(lines) == N and all(s["scores"]["pending"] == 1 and s["prediction"] for s in lines)
    res = json.loads((out / "r" / "mmvet.json").read_text())
    assert res["metrics"] == {} and "the judge did not grade them" in res["notes"]["note"]

    # later: `mmeval score` grades the saved answers with a judge that answers
    with fake_endpoint(grader) as (good, seen):
        s = CliRunner().invoke(main, ["score", "--task", "mmvet", "--predictions",
                                      str(out / "r" / "mmvet.samples.jsonl"), "--data", str(mmvet_data),
                                      "--bootstrap", "0", "--task-args", f"judge_url={good},judge_cache={cache}"])
        assert s.exit_code == 0, s.output
        assert len(seen) == N
        assert f"mmvet: graded {N} samples" in s.output
        assert json.loads(s.stdout[s.stdout.index("{"):])["total"] == pytest.approx(expected_total(lines))
        # and the run itself, re-run with that judge, grades in its folder without answering again
        again = run_mmvet(mmvet_data, out, f"mmvet.judge_url={good},mmvet.judge_cache={cache}")
        assert again.exit_code == 0, again.output
        assert f"{N} already done, 0 to go" in again.output and len(seen) == N  # all from the cache
    assert all(x["scores"]["pending"] == 0 for x in samples(out))
    res = json.loads((out / "r" / "mmvet.json").read_text())
    assert res["metrics"]["total"] == pytest.approx(expected_total(lines)) and "notes" in res
    assert "note" not in res["notes"]


def test_a_judge_that_refuses_connections_costs_no_retries(mmvet_data, tmp_path):
    out = tmp_path / "out"
    url = refused_endpoint()
    started = time.monotonic()
    r = run_mmvet(mmvet_data, out, f"mmvet.judge_url={url},mmvet.judge_cache={tmp_path / 'cache'}")
    elapsed = time.monotonic() - started
    assert r.exit_code == 0, r.output
    assert elapsed < 30, elapsed  # was 30 s of silent retries per sample
    [line] = judge_lines(r.output)
    assert "3 requests in a row failed, the last with ConnectionRefusedError" in line
    # the first three samples were each asked once, failed, and keep their error; the rest were not asked
    lines = samples(out)
    assert [("judge_error" in s["scores"]) for s in lines] == [True, True, False, False, False, False]
    assert all(s["scores"]["pending"] == 1 for s in lines)
    assert f"{N} of {N} samples left pending" in line


def test_a_slow_judge_stops_at_the_deadline(mmvet_data, tmp_path):
    out = tmp_path / "out"

    def slow(body):
        time.sleep(0.4)
        return grader(body)

    with fake_endpoint(slow) as (url, seen):
        r = run_mmvet(mmvet_data, out, f"mmvet.judge_url={url},mmvet.judge_deadline=1,"
                                       f"mmvet.judge_cache={tmp_path / 'cache'}")
    assert r.exit_code == 0, r.output
    lines = samples(out)
    graded = sum(s["scores"]["pending"] == 0 for s in lines)
    assert 1 <= graded < N and len(seen) <= graded + 1
    [line] = judge_lines(r.output)
    assert "its grading deadline of 1 s passed" in line and f"{N - graded} of {N} samples left pending" in line


def test_keys_never_reach_a_file_or_a_log_and_the_query_string_is_kept(mmvet_data, tmp_path):
    out = tmp_path / "out"
    secret_query, secret_key = "SEKRET-QUERY-1234", "sk-SEKRET-KEY-5678"

    def echo(body):  # a server that echoes the credentials it got into its error message
        return f"invalid key {secret_key} for api-key={secret_query}"

    with fake_endpoint(echo, status=401, full=True) as (url, seen):
        r = run_mmvet(mmvet_data, out, f"mmvet.judge_url={url}?api-version=2024-02-01&api-key={secret_query},"
                                       f"mmvet.judge_key={secret_key},mmvet.judge_cache={tmp_path / 'cache'}")
    assert r.exit_code == 0, r.output
    assert seen[0]["path"] == f"/v1/chat/completions?api-version=2024-02-01&api-key={secret_query}"
    assert seen[0]["auth"] == f"Bearer {secret_key}"
    assert len(seen) == 3  # 401 is not retried; the third failure in a row stops the pass
    written = {p.name: p.read_text() for p in (out / "r").iterdir() if p.is_file()}
    assert "SEKRET" not in r.output and not [name for name, text in written.items() if "SEKRET" in text]
    errors = [s["scores"]["judge_error"] for s in samples(out) if "judge_error" in s["scores"]]
    assert len(errors) == 2 and all("HTTP 401" in e and "invalid key *** for api-key=***" in e for e in errors)
    assert "/v1/chat/completions?api-version=2024-02-01&api-key=***" in errors[0]
    res = json.loads(written["mmvet.json"])
    assert res["task_args"]["judge_key"] == "***"
    assert res["task_args"]["judge_url"].endswith("/v1?api-version=2024-02-01&api-key=***")


# --------------------------------------------------------------------------- the pieces
def test_chat_url_keeps_the_query_string():
    assert chat_url("http://h/v1?api-key=k") == "http://h/v1/chat/completions?api-key=k"
    assert chat_url("http://h/v1/?a=1&b=2") == "http://h/v1/chat/completions?a=1&b=2"
    assert chat_url("http://h/v1/chat/completions?x=y") == "http://h/v1/chat/completions?x=y"
    assert chat_url("http://h/openai/deployments/gpt/") == "http://h/openai/deployments/gpt/chat/completions"


def test_redact_url_hides_user_info_and_query_values():
    assert redact_url("http://user:pw@h:8/v1?api-key=abc&api-version=1&token") == \
        "http://***@h:8/v1?api-key=***&api-version=1&***"
    assert redact_url("http://h/v1") == "http://h/v1"
    client = JudgeClient(url="http://u:longpassword@h/v1?key=verysecret", model="m", key="sk-abcdef")
    assert client.scrub("sent sk-abcdef to http://u:longpassword@h/v1/chat/completions?key=verysecret, verysecret") \
        == "sent *** to http://***@h/v1/chat/completions?key=***, ***"
    assert "sk-abcdef" not in repr(client)


def test_circuit_breaker_counts_failures_in_a_row_and_the_deadline():
    b = CircuitBreaker(max_failures=2)
    b.before_request()
    b.failure("x")
    b.success()  # a success in between: the count starts again
    b.failure("x")
    b.before_request()
    b.failure("HTTP 500")
    with pytest.raises(JudgeUnavailable, match="2 requests in a row failed, the last with HTTP 500"):
        b.before_request()
    d = CircuitBreaker(max_failures=5, deadline_s=0.2)
    d.before_request()
    assert 0 < d.remaining() <= 0.2
    time.sleep(0.25)
    with pytest.raises(JudgeUnavailable, match="deadline of 0.2 s passed"):
        d.before_request()


@pytest.mark.parametrize("option", ["judge_timeout=0", "judge_deadline=-1", "judge_max_failures=1.5",
                                    "judge_timeout=nan", "judge_deadline=inf", "judge_timeout=fast"])
def test_bad_judge_limits_are_one_line_before_any_answer(mmvet_data, tmp_path, option):
    name = option.split("=")[0]
    with pytest.raises(MMEvalError, match=f"task option {name}=.*: expected a positive"):
        MMVet(**dict([option.split("=")]))
    r = run_mmvet(mmvet_data, tmp_path / "out", f"mmvet.{option}")
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith(f"error: task option {name}=")
    assert not (tmp_path / "out").exists()
    assert judge_from_options({"judge_url": "http://h/v1", "judge_timeout": "2.5"}, "m").timeout == 2.5
    with pytest.raises(MMEvalError, match=r"judge URL ftp://\*\*\*@h/v1\?k=\*\*\*: expected http\(s\)://"):
        judge_from_options({"judge_url": "ftp://user:pw@h/v1?k=secret"}, "m")


def test_a_bad_judge_url_stops_before_any_answer(mmvet_data, tmp_path):
    r = run_mmvet(mmvet_data, tmp_path / "out", "mmvet.judge_url=localhost:8000/v1?key=secret-value")
    assert r.exit_code == 2 and not (tmp_path / "out").exists()
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: judge URL localhost:8000/v1?key=***: expected http(s)://") and "secret" not in line

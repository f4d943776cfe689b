"""`mmeval run`'s options are checked before anything runs: each probe of issue 21 that once ran the wrong
thing silently, or died with a traceback after loading the model, is one line and exit 2 here, and
nothing is written."""

from __future__ import annotations

import pytest

from mmeval.adapter import CommonModelArgs, parse_device
from mmeval.errors import ModelArgsError, OptionError
from tests.reliability.helpers import (
    cli,
    last_error_line,
    mock_run,
    only_error_line,
    pope_data,
    read_only_dir,
    read_only_methods,
    result_files,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return pope_data(tmp_path_factory.mktemp("data"), n_images=4)


# ----------------------------------------------------------------------------------- --tasks, --task-args
def test_task_args_for_a_task_not_run_is_refused(data, tmp_path):
    """`vqa2` (a typo of vqav2) once left test-dev running with an empty accuracy, exit 0."""
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--task-args", "vqa2.split=val"))
    assert line == "error: --task-args vqa2.split=val: vqa2 is not a task (the tasks run: pope)"
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--task-args", "vqav2.split=val"))
    assert line == "error: --task-args vqav2.split=val: vqav2 is not among --tasks (the tasks run: pope)"
    assert result_files(tmp_path / "out") == []


@pytest.mark.parametrize("tasks", [",", " , ,", ""])
def test_tasks_naming_nothing_is_refused(data, tmp_path, tasks):
    line = only_error_line(mock_run(data, tmp_path / "out", tasks))
    assert line.startswith(f"error: --tasks {tasks!r}: names no task")
    assert result_files(tmp_path / "out") == []


def test_unknown_task_is_refused_before_anything_starts(data, tmp_path):
    line = only_error_line(mock_run(data, tmp_path / "out", "pope,popee"))
    assert "unknown task 'popee'" in line and "pope" in line


# ------------------------------------------------------------------------- --limit, --batch-size, --bootstrap
@pytest.mark.parametrize("limit", ["0", "-3", "-1"])
def test_limit_must_be_positive(data, tmp_path, limit):
    """`--limit -3` once evaluated all but the last 3 documents; `--limit 0` did nothing, exit 0."""
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--limit", limit))
    assert line == (f"error: --limit {limit}: expected a positive number of documents per task "
                    "(leave it out to evaluate all)")
    assert result_files(tmp_path / "out") == []


def test_limit_still_limits(data, tmp_path):
    r = mock_run(data, tmp_path / "out", "pope", "--limit", "5")
    assert r.exit_code == 0, r.output
    assert "pope [llava]: 5 samples" in r.output


@pytest.mark.parametrize("size", ["0", "-2"])
def test_batch_size_must_be_positive_before_the_model_loads(data, tmp_path, size, monkeypatch):
    """Once a traceback after loading the model: now refused before (a model that is built fails the test)."""
    from model_adapters.mock import MockAdapter

    def no_model(*a, **k):
        raise AssertionError("the model was built")

    monkeypatch.setattr(MockAdapter, "from_args", classmethod(no_model))
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--batch-size", size))
    assert line == f"error: --batch-size {size}: expected a positive integer or 'auto'"


def test_negative_bootstrap_is_refused(data, tmp_path):
    r = cli("run", "--model", "mock", "--tasks", "pope", "--data", data, "--output", tmp_path, "--bootstrap", "-5")
    assert only_error_line(r).startswith("error: --bootstrap -5: expected 0 (no intervals) or a positive number")


@pytest.mark.parametrize("args", [("--limit", "abc"), ("--batch-size", "1.5"), ("--no-such-option",)])
def test_options_click_cannot_parse_are_one_line_too(data, tmp_path, args):
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", *args))
    assert args[0] in line and "--help" in line


def test_a_task_args_piece_without_a_value_is_one_line(data, tmp_path):
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--task-args", "pope"))
    assert "--task-args" in line and "key=value" in line


def test_mmeval_alone_still_prints_its_help():
    r = cli()
    assert "Usage:" in r.output and "run" in r.output


# ------------------------------------------------------------------------------------------- --model-args
@pytest.mark.parametrize("arg, expected", [
    ("seed=abc", "error: --model-args seed=abc: expected an integer"),
    ("seed=1.5", "error: --model-args seed=1.5: expected an integer"),
    ("delay=fast", "error: --model-args delay=fast: expected a finite number >= 0"),
    ("delay=-1", "error: --model-args delay=-1: expected a finite number >= 0"),
    ("delay=nan", "error: --model-args delay=nan: expected a finite number >= 0"),
])
def test_wrong_typed_model_args_name_the_option(data, tmp_path, arg, expected):
    r = mock_run(data, tmp_path / "out", "pope", "--model-args", arg)
    assert last_error_line(r) == expected
    assert result_files(tmp_path / "out") == []


@pytest.mark.parametrize("args, expected", [
    ({"seed": "x"}, "--model-args seed=x: expected an integer"),
    ({"tiny": "maybe"}, "--model-args tiny=maybe: expected a boolean"),
    ({"cuda_graphs": "2"}, "--model-args cuda_graphs=2: expected a boolean"),
    ({"dtype": "int8"}, "--model-args dtype=int8: expected one of float32, bfloat16, float16"),
    ({"device": "gpu"}, "--model-args device gpu: expected cpu, cuda or cuda:N or meta"),
])
def test_common_model_args_are_typed(args, expected):
    """VL-Mamba's and Cobra's shared options (CommonModelArgs) go through the same parse helpers."""
    with pytest.raises(ModelArgsError if "device" not in args else OptionError) as e:
        CommonModelArgs.parse(args)
    assert expected in str(e.value)


def test_common_model_args_still_parse():
    c = CommonModelArgs.parse({"seed": "7", "tiny": "1", "dtype": "bf16"})
    assert (c.seed, c.tiny, str(c.dtype), c.device.type) == (7, True, "torch.bfloat16", "cpu")


# ---------------------------------------------------------------------------------------------- --device
@pytest.mark.parametrize("device, expected", [
    ("gpu", "error: --device gpu: expected cpu, cuda or cuda:N"),
    ("cuda0", "error: --device cuda0: expected cpu, cuda or cuda:N"),
    ("cuda:x", "error: --device cuda:x: expected cpu, cuda or cuda:N"),
])
def test_unknown_devices_are_refused(data, tmp_path, device, expected):
    assert only_error_line(mock_run(data, tmp_path / "out", "pope", "--device", device)) == expected


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_one_line(data, tmp_path, device, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    line = only_error_line(mock_run(data, tmp_path / "out", "pope", "--device", device))
    assert line == f"error: --device {device}: torch sees no CUDA GPU on this machine; use --device cpu"


def test_a_gpu_index_past_the_last_gpu_is_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("cuda:1") == "cuda:1"
    with pytest.raises(OptionError, match=r"--device cuda:2: torch sees 2 CUDA GPU\(s\) \(cuda:0 to cuda:1\)"):
        parse_device("cuda:2")


# ---------------------------------------------------------------------------------------------- --output
def test_output_that_is_a_file(data, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    assert only_error_line(mock_run(data, f, "pope")) == f"error: --output {f}: is a file; expected a folder"
    below = f / "runs"
    assert only_error_line(mock_run(data, below, "pope")) == f"error: --output {below}: {f} is a file, not a folder"
    assert f.read_text() == "keep me"


def test_run_name_colliding_with_a_file(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "taken").write_text("x")
    line = only_error_line(mock_run(data, out, "pope", "--run-name", "taken"))
    assert line == f"error: --run-name {out / 'taken'}: is a file; expected a folder"
    line = only_error_line(mock_run(data, out, "pope", "--run-name", "../elsewhere"))
    assert line == "error: --run-name '../elsewhere': expected a folder name (no '/')"
    assert result_files(out) == [out / "taken"]


@pytest.mark.parametrize("method", read_only_methods() or ["simulated"])
def test_output_on_a_read_only_folder(data, tmp_path, method, monkeypatch):
    """A read-only bind mount where this process may mount (root), chmod where it runs as another user
    (root ignores mode bits); where neither is honest, the kernel's answer is simulated."""
    out = tmp_path / "ro"
    if method == "simulated":
        out.mkdir()
        import mmeval.validation as v

        monkeypatch.setattr(v.os, "access", lambda p, mode: False)
        monkeypatch.setattr(v, "_read_only_mount", lambda p: True)
        line = only_error_line(mock_run(data, out / "runs", "pope"))
    else:
        with read_only_dir(out, method):
            line = only_error_line(mock_run(data, out / "runs", "pope"))
            assert result_files(out) == []
    why = "permission denied" if method == "chmod" else "read-only file system"
    assert line == f"error: --output {out / 'runs'}: cannot write in {out} ({why})"

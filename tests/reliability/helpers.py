"""What the reliability tests share: running the CLI, the one-line-error assertions, valid data in
every task's layout (from the tasks' own writers) and the ways a machine can make a folder read-only
or a disk full."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from click.testing import CliRunner, Result

from mmeval.cli import main

# the ten paper benchmarks, written by `mmeval synth` (each through its task's write_layout)
SYNTH_TASKS = ("vqav2", "gqa", "scienceqa_img", "textvqa", "pope", "mme", "mmbench", "mmvet", "vizwiz", "vsr")
CAPTION_TASKS = ("coco_caption", "nocaps", "textcaps")


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def mock_run(data: Path, out: Path, task: str = "pope", *extra: str | Path) -> Result:
    return cli("run", "--model", "mock", "--tasks", task, "--data", data, "--output", out, "--no-progress",
               "--bootstrap", "0", *extra)


def _no_traceback(r: Result) -> None:
    assert r.exception is None or isinstance(r.exception, SystemExit), (
        f"{type(r.exception).__name__}: {r.exception}\n{r.output}")
    assert "Traceback" not in r.output, r.output


def only_error_line(r: Result) -> str:
    """The command stopped with exit 2 and printed exactly one line, an error (nothing ran before it)."""
    _no_traceback(r)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def last_error_line(r: Result) -> str:
    """The command stopped with exit 2; its one error line is the last line (progress lines before it)."""
    _no_traceback(r)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2, r.output
    errors = [x for x in lines if x.startswith("error")]
    assert errors == [lines[-1]] and lines[-1].startswith("error: "), r.output
    return lines[-1]


def load_docs(task_name: str, data: Path, protocol: str | None = None):
    """A task's documents under a protocol (default: the task's own), as `mmeval run` loads them."""
    from mmeval.registry import get_task
    from mmeval.runner import load_task_docs

    task = get_task(task_name)
    return load_task_docs(task, protocol or task.default_protocol, data, None)


def result_files(out: Path) -> list[Path]:
    """Every file a run or score wrote under `out` (results, samples, manifests, submissions)."""
    return sorted(p for p in Path(out).rglob("*") if p.is_file()) if Path(out).exists() else []


# ---------------------------------------------------------------------------------------------- data
def write_valid_layouts(root: Path, n: int = 6) -> Path:
    """Every task's data in its own layout: the ten benchmarks through `mmeval synth` (the tasks'
    write_layout), the three caption tasks through theirs. Small: `n` questions per task."""
    from mmeval.synth.benchmarks import write_benchmarks

    write_benchmarks(root, seed=0, counts=n, tasks=SYNTH_TASKS)
    write_caption_layouts(root, n)
    return root


def write_caption_layouts(root: Path, n: int) -> None:
    from PIL import Image

    from tasks.coco_caption import CocoCaption
    from tasks.nocaps import NoCaps
    from tasks.textcaps import TextCaps

    def picture(i: int):
        return Image.new("RGB", (12, 10), (40 * i % 255, 90, 200 - 30 * i % 200))

    refs = [[f"a picture number {i}", f"an image with the number {i}"] for i in range(n)]
    CocoCaption.write_layout(root / "coco_caption", [
        {"filepath": "val2014", "filename": f"COCO_val2014_{100 + i:012d}.jpg", "imgid": i, "split": "test",
         "sentences": refs[i], "cocoid": 100 + i, "image": picture(i)} for i in range(n)])
    NoCaps.write_layout(root / "nocaps", [
        {"image_id": i, "image": picture(i), "annotations_captions": refs[i], "image_file_name": f"{i:016x}.jpg"}
        for i in range(n)])
    TextCaps.write_layout(root / "textcaps", [
        {"image_id": f"{i:016x}", "image": picture(i), "caption_str": refs[i], "reference_strs": refs[i]}
        for i in range(n)])


def pope_data(root: Path, n_images: int = 20, per_image: int = 3) -> Path:
    """POPE in lmms-lab's parquet layout: n_images x per_image questions over the three categories."""
    from tasks.pope import Pope
    from tests.conftest import pope_rows

    Pope.write_layout(root / "pope", pope_rows(n_images=n_images, per_image=per_image))
    return root


# ------------------------------------------------------------------------------ read-only and full disks
def can_mount() -> bool:
    """Whether this process may mount a filesystem (root with CAP_SYS_ADMIN): tried once, on a tmpfs."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory(prefix="mmeval-mount-probe-") as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=True)
        return ok


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (unmounted afterwards, whatever happens)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"mmeval-test-{uuid.uuid4().hex[:8]}",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def resize_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@contextlib.contextmanager
def read_only_dir(path: Path, method: str):
    """`path` made read-only by `method`: "chmod" (honest for a non-root user only: root ignores mode
    bits) or "bind-mount" (a read-only bind mount of the folder onto itself; root only)."""
    path.mkdir(parents=True, exist_ok=True)
    if method == "chmod":
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def read_only_methods() -> list[str]:
    """The honest ways this machine has to make a folder read-only (see `read_only_dir`)."""
    if os.geteuid() != 0:
        return ["chmod"]
    return ["bind-mount"] if can_mount() else []

"""The engine never imports the report layer (the report layer may import the engine)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The engine: what runs and scores an evaluation (plus the task modules, discovered below).
ENGINE_MODULES = ("mmeval.runner", "mmeval.scoring", "mmeval.bootstrap", "mmeval.rescore", "mmeval.results",
                  "mmeval.task", "mmeval.types", "mmeval.registry", "mmeval.adapter", "mmeval.scheduler",
                  "mmeval.distributed", "mmeval.environment", "mmeval.errors")
ENGINE_PACKAGES = ("mmeval/metrics", "mmeval/data", "tasks")
REPORT = re.compile(r"mmeval\.report(\.\w+)*")


def engine_files() -> list[Path]:
    files = [ROOT / (m.replace(".", "/") + ".py") for m in ENGINE_MODULES]
    for pkg in ENGINE_PACKAGES:
        files += sorted((ROOT / pkg).rglob("*.py"))
    return files


def report_imports(path: Path) -> list[str]:
    """Every statement in the file, at any depth, that imports the report layer (also by name string)."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]  # importlib.import_module("mmeval.report...")
        else:
            continue
        if any(REPORT.fullmatch(n) for n in names):
            hits.append(f"{path}:{node.lineno}")
    return hits


def test_no_engine_source_imports_the_report_layer():
    files = engine_files()
    assert len(files) > len(ENGINE_MODULES) + 10 and all(f.is_file() for f in files)
    assert [h for f in files for h in report_imports(f)] == []


def test_the_check_sees_lazy_and_by_name_imports_not_mentions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Intervals as in mmeval.report.statistics."""\n'
                     "import importlib\n"
                     "def f():\n"
                     "    from mmeval.report.statistics import bootstrap_ci\n"
                     "    return importlib.import_module('mmeval.report'), bootstrap_ci\n")
    assert report_imports(probe) == [f"{probe}:4", f"{probe}:5"]


def test_a_run_and_a_rescoring_load_no_report_module(pope_data, tmp_path):
    """Imported, then used end to end (a mock run, then `score` on its samples) in a fresh interpreter:
    nothing on the way, lazy imports included, loads mmeval.report."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        from pathlib import Path
        import tasks
        for name in sys.argv[3].split(","):
            importlib.import_module(name)
        for m in pkgutil.iter_modules(tasks.__path__):
            importlib.import_module("tasks." + m.name)
        from mmeval.registry import get_task
        from mmeval.rescore import score_file
        from mmeval.runner import RunConfig, Runner
        data, out = Path(sys.argv[1]), Path(sys.argv[2])
        cfg = RunConfig(model="mock", tasks=["pope"], data=data, output=out, run_name="r", n_boot=20, progress=False)
        run = Runner(cfg, log=lambda m: None).run()["pope"]
        summary, _ = score_file(get_task("pope"), "llava", out / "r" / "pope.samples.jsonl", data, n_boot=20)
        assert run["ci95"] and summary["ci95"] == run["ci95"], (run, summary)
        print(sorted(m for m in sys.modules if m == "mmeval.report" or m.startswith("mmeval.report.")))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code, str(pope_data), str(tmp_path / "out"), ",".join(ENGINE_MODULES)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

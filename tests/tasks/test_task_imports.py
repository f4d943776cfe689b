"""Tasks borrow from tasks._common and mmeval, never from another task module (checked on the source
with `ast`, so an import inside a function counts too); the registry skips tasks._common."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import tasks

TASKS_DIR = Path(tasks.__file__).parent
SHARED = "tasks._common"


def _package(path: Path) -> str:
    """The package a file under tasks/ belongs to (what its relative imports start from)."""
    return ".".join(path.parent.relative_to(TASKS_DIR.parent).parts)


def _resolve(package: str, node: ast.ImportFrom) -> str:
    """The absolute module of a `from ... import` (a relative one resolved against `package`)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def forbidden_imports(source: str, package: str) -> list[str]:
    """The task modules that a module of `package` (tasks or a package below it) imports, other than
    tasks._common."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node)
            # `from tasks import vqav2` imports a module; `from tasks.x import y` imports from one.
            targets = [f"{base}.{alias.name}" for alias in node.names] if base == "tasks" else [base]
        else:
            continue
        for target in targets:
            if (target == "tasks" or target.startswith("tasks.")) and not (
                    target == SHARED or target.startswith(SHARED + ".")):
                found.append(f"line {node.lineno}: {target}")
    return found


def test_no_task_module_imports_another():
    files = sorted(TASKS_DIR.rglob("*.py"))
    assert any(p.name == "vqav2.py" for p in files) and any(p.parent.name == "_common" for p in files)
    bad = {str(p.relative_to(TASKS_DIR)): hits for p in files
           if (hits := forbidden_imports(p.read_text(), _package(p)))}
    assert not bad, f"task modules import other task modules (move the shared code to tasks/_common): {bad}"


def test_checker_catches_every_import_form():
    package = "tasks"  # where tasks/gqa.py lives
    assert forbidden_imports("from tasks.vqav2 import find_path\n", package) == ["line 1: tasks.vqav2"]
    assert forbidden_imports("def f():\n    import tasks.pope as p\n", package) == ["line 2: tasks.pope"]
    assert forbidden_imports("from tasks import vqav2\n", package) == ["line 1: tasks.vqav2"]
    assert forbidden_imports("from . import textvqa\n", package) == ["line 1: tasks.textvqa"]
    assert forbidden_imports("from .coco_caption import CaptionTask\n", package) == ["line 1: tasks.coco_caption"]
    assert forbidden_imports("from ._common.prompts import SHORT_ANSWER\n", package) == []
    assert forbidden_imports("from tasks._common.cells import answer_texts\nimport tasks._common\n", package) == []
    assert forbidden_imports("from tasks import _common\nfrom mmeval.task import Task\n", package) == []
    # inside tasks/_common, `from . import x` stays in it and `from .. import x` leaves it
    assert forbidden_imports("from . import prompts\n", SHARED) == []
    assert forbidden_imports("from ..pope import Pope\n", SHARED) == ["line 1: tasks.pope"]


def test_registry_skips_the_shared_package():
    from mmeval.registry import task_classes

    names = {info.name for info in pkgutil.iter_modules(tasks.__path__)}
    assert "_common" in names  # pkgutil lists it; the registry leaves it out by its leading underscore
    modules = {cls.__module__ for cls in task_classes().values()}
    assert not any(m.startswith(SHARED) for m in modules)
    assert {"tasks.coco_caption", "tasks.nocaps", "tasks.textcaps", "tasks.vqav2"} <= modules

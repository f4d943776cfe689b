"""The task registry and the model registry.

Built-in tasks are the `Task` subclasses found in the modules of the top-level `tasks/` package,
built-in models the `Adapter` subclasses in `model_adapters/`; adding one is adding one module.
Third-party packages plug in through the entry-point groups `mmeval.tasks` and `mmeval.models`
(each entry point names a Task or Adapter subclass). Nothing is registered at import time: the
maps are built on first use and cached. A module that fails to import is an error naming it (not a
task that silently goes missing): every dependency of the built-in modules is declared.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from importlib.metadata import entry_points

from mmeval.adapter import Adapter
from mmeval.errors import PluginImportError, UnknownNameError
from mmeval.task import PROTOCOLS, Task


def import_or_fail(module_name: str):
    """Import one of our own modules; an ImportError inside it becomes one line naming the module."""
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginImportError(f"module {module_name} failed to import: {type(exc).__name__}: {exc}") from exc


def _discover(package: str, base: type, group: str) -> dict[str, type]:
    found: dict[str, type] = {}
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        module = import_or_fail(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, base) and cls.__module__ == module_name and not inspect.isabstract(cls) \
                    and getattr(cls, "name", None):
                found[cls.name] = cls
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
        except ImportError as exc:
            raise PluginImportError(f"entry point {group}:{ep.name} -> {ep.value} failed to import: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise TypeError(f"entry point {group}:{ep.name} -> {ep.value} is not a {base.__name__} subclass")
        found[getattr(cls, "name", ep.name)] = cls
    return dict(sorted(found.items()))


@functools.cache
def task_classes() -> dict[str, type[Task]]:
    return _discover("tasks", Task, "mmeval.tasks")


@functools.cache
def model_classes() -> dict[str, type[Adapter]]:
    return _discover("model_adapters", Adapter, "mmeval.models")


def get_task(name: str, **options: str) -> Task:
    classes = task_classes()
    if name not in classes:
        raise UnknownNameError(f"unknown task '{name}'; known tasks: {', '.join(classes)}")
    task = classes[name](**options)
    task.options = {k: str(v) for k, v in options.items()}  # recorded in results files as `task_args`
    return task


def get_model_class(name: str) -> type[Adapter]:
    classes = model_classes()
    if name not in classes:
        raise UnknownNameError(f"unknown model '{name}'; known models: {', '.join(classes)}")
    return classes[name]


def check_protocol_name(name: str) -> str:
    if name not in PROTOCOLS:
        raise UnknownNameError(f"unknown protocol '{name}'; known protocols: {', '.join(PROTOCOLS)}")
    return name

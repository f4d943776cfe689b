"""A module of ours that fails to import is an error naming it: never a task, model or command that goes missing."""

from __future__ import annotations

import importlib
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from mmeval import cli, registry
from mmeval.errors import MMEvalError, PluginImportError
from mmeval.task import Task


@pytest.fixture
def broken_package(tmp_path, monkeypatch):
    """A temporary package `fake_tasks` with one good task module and one whose import fails."""
    pkg = tmp_path / "fake_tasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(textwrap.dedent("""
        from tasks.pope import Pope

        class Good(Pope):
            name = "good"
    """))
    (pkg / "broken.py").write_text("import a_dependency_nobody_declared  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_tasks"
    for name in [m for m in sys.modules if m == "fake_tasks" or m.startswith("fake_tasks.")]:
        del sys.modules[name]


def test_discovery_fails_naming_the_broken_module(broken_package):
    with pytest.raises(PluginImportError) as info:
        registry._discover(broken_package, Task, "mmeval.no-such-group")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("module fake_tasks.broken failed to import: ModuleNotFoundError")
    assert "a_dependency_nobody_declared" in message
    assert isinstance(info.value, MMEvalError)  # so the CLI prints it as one line, exit 2


def test_discovery_still_finds_the_good_module_once_the_broken_one_is_gone(broken_package, tmp_path):
    (tmp_path / "fake_tasks" / "broken.py").unlink()
    assert list(registry._discover(broken_package, Task, "mmeval.no-such-group")) == ["good"]


def fail_importing(monkeypatch, module: str, exc: ImportError) -> None:
    """Importing `module` raises `exc` (as a module of ours with a broken import would)."""
    real_import = importlib.import_module

    def import_module(name, package=None):
        if name == module:
            raise exc
        return real_import(name, package)

    monkeypatch.setattr(registry.importlib, "import_module", import_module)


def test_cli_prints_one_line_when_a_task_module_is_broken(monkeypatch):
    fail_importing(monkeypatch, "tasks.gqa", ImportError("cannot import name 'gone' from 'mmeval.metrics.vqa'"))
    registry.task_classes.cache_clear()
    try:
        result = CliRunner().invoke(cli.main, ["list", "tasks"])
    finally:
        registry.task_classes.cache_clear()
    assert result.exit_code == 2, result.output
    assert result.output == ("error: module tasks.gqa failed to import: ImportError: "
                             "cannot import name 'gone' from 'mmeval.metrics.vqa'\n")


def test_broken_entry_point_is_named(monkeypatch):
    class BrokenEntryPoint:
        name, value, group = "plugin", "plugin_pkg.tasks:PluginTask", "mmeval.tasks"

        def load(self):
            raise ModuleNotFoundError("No module named 'plugin_pkg'")

    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()] if group == "mmeval.tasks" else [])
    expected = (r"^entry point mmeval.tasks:plugin -> plugin_pkg.tasks:PluginTask failed to import: "
                r"ModuleNotFoundError: No module named 'plugin_pkg'$")
    with pytest.raises(PluginImportError, match=expected):
        registry._discover("tasks", Task, "mmeval.tasks")


@pytest.mark.parametrize("argv", [["bench", "--help"], ["--help"]])
def test_cli_command_whose_module_fails_is_an_error_not_hidden(monkeypatch, argv):
    fail_importing(monkeypatch, "mmeval.benchmark.commands", ModuleNotFoundError("No module named 'tabulate'"))
    result = CliRunner().invoke(cli.main, argv)
    assert result.exit_code == 2, result.output
    assert result.output == ("error: module mmeval.benchmark.commands failed to import: "
                             "ModuleNotFoundError: No module named 'tabulate'\n")


def test_every_module_command_is_listed_and_loads():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert set(cli.MODULE_COMMANDS) <= listed
    ctx = click.Context(cli.main)
    for name in cli.MODULE_COMMANDS:
        assert isinstance(cli.main.get_command(ctx, name), click.Command)

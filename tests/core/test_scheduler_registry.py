"""Scheduler grouping/ordering, registry discovery and entry-point plugins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from mmeval import registry
from mmeval.errors import UnknownNameError
from mmeval.scheduler import schedule
from mmeval.types import Request


def test_schedule_keeps_images_together_and_orders_by_length():
    reqs = [Request(doc_id=str(i), prompt="x" * n, group_key=g)
            for i, (n, g) in enumerate([(5, "a"), (9, "b"), (3, "a"), (7, "c"), (8, "b"), (1, "a")])]
    batches = schedule(reqs, batch_size=2)
    order = [i for b in batches for i in b]
    assert sorted(order) == list(range(6)) and all(len(b) <= 2 for b in batches)
    groups = [reqs[i].group_key for i in order]
    assert groups == ["b", "b", "c", "a", "a", "a"]  # longest group first, contiguous groups
    assert [len(reqs[i].prompt) for i in order[3:]] == [5, 3, 1]
    with pytest.raises(ValueError):
        schedule(reqs, 0)


def test_builtin_discovery():
    assert "pope" in registry.task_classes()
    assert "mock" in registry.model_classes()
    with pytest.raises(UnknownNameError, match="known tasks: .*pope"):
        registry.get_task("nonexistent")


def test_entry_point_plugins(monkeypatch):
    registry.task_classes.cache_clear()
    from tasks.pope import Pope

    class PluginTask(Pope):
        name = "plugin_pope"

    import sys
    import types
    mod = types.ModuleType("fake_plugin_mod")
    mod.PluginTask = PluginTask
    monkeypatch.setitem(sys.modules, "fake_plugin_mod", mod)
    ep = EntryPoint(name="plugin_pope", value="fake_plugin_mod:PluginTask", group="mmeval.tasks")

    def fake_entry_points(group):
        return [ep] if group == "mmeval.tasks" else []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    try:
        assert registry.get_task("plugin_pope").name == "plugin_pope"
    finally:
        registry.task_classes.cache_clear()

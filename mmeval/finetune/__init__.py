"""Finetuning (alignment / instruction tuning) of VL-Mamba and Cobra with the papers' recipes.

    from mmeval.finetune import finetune, get_recipe
    res = finetune("cobra", get_recipe("cobra", "instruct", {"max_steps": "10"}), "data.json", "images/", "out/")

The click command is `mmeval.finetune.commands.finetune_command` (`mmeval finetune --help`)."""
from mmeval.finetune.recipes import Recipe, get_recipe, parse_set

__all__ = ["Recipe", "finetune", "get_recipe", "parse_set", "spawn_finetune"]


def __getattr__(name):  # the loop imports torch: load it only when asked
    if name in ("finetune", "spawn_finetune", "TrainResult"):
        from mmeval.finetune import loop

        return getattr(loop, name)
    raise AttributeError(name)

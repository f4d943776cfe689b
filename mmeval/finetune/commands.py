"""`mmeval finetune`: the click command (wired into mmeval/cli.py by its owner)."""
from __future__ import annotations

import json

import click

EPILOG = """\b
Examples:
  # tiny CPU smoke run (random tiny model, 20 steps)
  mmeval finetune --model cobra --stage instruct --data data.json --images imgs/ --tiny \\
      --max-steps 20 --set global_batch_size=8,per_device_batch_size=4,num_workers=0
  # VL-Mamba stage 1 (projector only) from a Mamba LM dir, then stage 2 from its output, 8 GPUs
  torchrun --nproc_per_node 8 -m mmeval finetune --model vl-mamba --stage align \\
      --data blip_laion_cc_sbu_558k.json --images LLaVA-Pretrain/images --init state-spaces/mamba-2.8b-slimpj \\
      --set vision_tower=siglip_dir,tokenizer=neox_dir --strategy ddp --output runs/vlm-align
  torchrun --nproc_per_node 8 -m mmeval finetune --model vl-mamba --stage instruct \\
      --data llava_v1_5_mix665k.json --images data/ --init runs/vlm-align --strategy fsdp --output runs/vlm
\b
--set takes recipe fields (learning_rate, epochs, global_batch_size, per_device_batch_size, weight_decay,
warmup_ratio, max_length, trainable=projector+lm, save_every, num_workers, seed, tensorboard, ...) and
model options (cobra: vision=DIR, llm=DIR, tokenizer=PATH, model_id; vl-mamba: vision_tower=DIR,
projector=FILE, tokenizer=PATH, encoder, mmc, scan, llm, image_position=llava|first). --resume auto continues
from the latest checkpoint in --output (trainer_state.pt: optimizer, scheduler, data position, RNG states)."""


def model_options() -> set[str]:
    """The --set keys that are model options (any trainable family's), not recipe fields."""
    from mmeval.finetune.specs import finetune_models

    return {k for spec in finetune_models().values() for k in spec.options}


@click.command("finetune", epilog=EPILOG, context_settings={"max_content_width": 110})
@click.option("--model", "model_name", required=True, metavar="NAME",
              help="a model family that declares a finetune spec (built in: vl-mamba, cobra)")
@click.option("--stage", type=click.Choice(["align", "instruct", "finetune"]), required=True,
              help="align: projector only (stage 1); instruct (= Cobra's 'finetune'): projector + LM")
@click.option("--data", "data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="LLaVA-format JSON/JSONL: [{id, image?, conversations: [{from, value}, ...]}]")
@click.option("--images", "images", type=click.Path(exists=True, file_okay=False), default=None,
              help="folder the samples' `image` paths are relative to")
@click.option("--init", "init", default=None, help="starting checkpoint in the model's layout (or a Mamba LM dir "
              "for vl-mamba align)")
@click.option("--output", "output", default="finetune-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "sets", multiple=True, help="key=value[,key=value...]: recipe fields / model options")
@click.option("--max-steps", type=int, default=None, help="optimizer steps (schedule length); default: epochs")
@click.option(
    "--stop-after", type=int, default=None, help="stop (with a checkpoint) after N steps, keeping the schedule"
)
@click.option("--resume", default=None, help="a checkpoint dir with trainer_state.pt, or 'auto'")
@click.option("--tiny", is_flag=True, help="tiny random model (tests / smoke runs)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="default: cuda when available")
@click.option("--strategy", type=click.Choice(["single", "ddp", "fsdp"]), default="single", show_default=True,
              help="ddp/fsdp need torchrun")
@click.option("--print-recipe", is_flag=True, help="print the resolved recipe as JSON and exit")
@click.option("--no-progress", is_flag=True)
def finetune_command(model_name, stage, data, images, init, output, sets, max_steps, stop_after, resume, tiny, device,
                     strategy, print_recipe, no_progress):
    """Finetune VL-Mamba or Cobra with the papers' recipes (every field overridable with --set)."""
    from mmeval.finetune.recipes import get_recipe, parse_set

    try:
        kv = parse_set(sets)
        known = model_options()
        options = {k: v for k, v in kv.items() if k in known}
        recipe = get_recipe(model_name, stage, {k: v for k, v in kv.items() if k not in known})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if print_recipe:
        click.echo(json.dumps(recipe.to_dict(), indent=2))
        return
    from mmeval.finetune.loop import finetune

    res = finetune(model_name, recipe, data, images, output, tiny=tiny, init=init, options=options, device=device,
                   strategy=strategy, max_steps=max_steps, stop_after=stop_after, resume=resume,
                   progress=not no_progress)
    if res.losses:
        click.echo(f"step {res.step}/{res.total_steps}  loss {res.losses[-1]:.4f}  checkpoint {res.last_checkpoint}")

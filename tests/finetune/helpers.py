"""Shared helpers for the finetune tests: tiny LLaVA-format data sets written to disk."""
import json
from pathlib import Path

from PIL import Image

COLORS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10), (250, 10, 250), (10, 250, 250),
          (120, 120, 120), (20, 20, 20)]
ANSWERS = ["red", "green", "blue", "yes", "no", "one", "two", "three"]


def write_images(d: Path, n: int = 8) -> None:
    for i in range(n):
        img = Image.new("RGB", (40, 30), COLORS[i % len(COLORS)])
        for x in range(0, 40, 4):  # a little structure
            img.putpixel((x, (x * (i + 1)) % 30), (255 - COLORS[i][0], 128, 255 - COLORS[i][2]))
        img.save(d / f"img{i}.png")


def eight_samples(d: Path, multi_turn: bool = False, text_only: int = 0) -> Path:
    """8 image samples whose answer is a single word determined by the image only, plus `text_only` rows."""
    write_images(d)
    rows = []
    for i in range(8):
        conv = [{"from": "human", "value": "<image>\nWhat color is the image ?"},
                {"from": "gpt", "value": ANSWERS[i]}]
        if multi_turn:
            conv += [{"from": "human", "value": "Is this a cat ?"}, {"from": "gpt", "value": "no"}]
        rows.append({"id": str(i), "image": f"img{i}.png", "conversations": conv})
    for j in range(text_only):
        rows.append({"id": f"t{j}", "conversations": [{"from": "human", "value": "How many ?"},
                                                      {"from": "gpt", "value": ANSWERS[j % 8]}]})
    f = d / "data.json"
    f.write_text(json.dumps(rows))
    return f


def vl_mamba_word_tokenizer():
    """Word-level tokenizer holding VL-Mamba's system prompt words, so its sequences stay short
    (the model's byte-level tiny tokenizer makes ~250-token prompts, slow on the CPU reference scan)."""
    from mmeval.models.cobra import build_tiny_tokenizer
    from mmeval.models.vl_mamba import SYSTEM_PROMPT

    words = set(SYSTEM_PROMPT.replace(".", " ").replace(",", " ").replace("'", " ' ").split())
    words |= set("USER ASSISTANT : What color is the image ? Is this a cat How many".split()) | set(ANSWERS)
    words |= {"s", "dog", "a", "this"}
    return build_tiny_tokenizer(sorted(words))


def training_prompt_ids(spec_name, model, tokenizer, question, has_image):
    """The finetune formatter's ids of a two-turn conversation on `question`, up to the first answer."""
    from mmeval.finetune.collate import IGNORE_INDEX
    from mmeval.finetune.specs import get_spec

    fmt = get_spec(spec_name).formatter(model, tokenizer, "chat", 2048)
    sample = {"conversations": [{"from": "human", "value": ("<image>\n" if has_image else "") + question},
                                {"from": "gpt", "value": "red"},
                                {"from": "human", "value": "is there a cat ?"}, {"from": "gpt", "value": "no"}]}
    if has_image:
        sample["image"] = "x.png"
    ids, labels = fmt(sample)
    first_target = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX)
    assert labels[first_target] == ids[first_target] and first_target > 0
    return ids[:first_target]

"""Prompt text and generation settings that several tasks send under the same protocol."""

from __future__ import annotations

from mmeval.types import Doc, GenerationConfig, Request

# LLaVA-1.5's short-answer instruction (llava_vqav2/gqa/pope/mme question files); lmms-eval's
# default post_prompt for those tasks is the same text.
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
# LLaVA-1.5's --single-pred-prompt for lettered choices (ScienceQA, MMBench); lmms-eval copies it.
OPTION_LETTER = "\nAnswer with the option's letter from the given choices directly."

LMMS_EVAL_STOP = ("\n\n",)  # lmms-eval's default `until` (the fewshot delimiter) when a task sets none
ASSISTANT_STOP = ("ASSISTANT:",)  # the `until` of lmms-eval's vizwiz, textvqa and mmbench tasks


def short_answer_request(doc: Doc, protocol: str) -> Request:
    """VQAv2 and GQA: "<question>" + SHORT_ANSWER; 16 new tokens stopping at a blank line under
    lmms-eval (its task yamls), 128 under LLaVA's and TRI's scripts."""
    if protocol == "lmms-eval":
        gen = GenerationConfig(max_new_tokens=16, stop=LMMS_EVAL_STOP)
    else:
        gen = GenerationConfig(max_new_tokens=128)
    return Request(doc_id=doc.doc_id, prompt=doc.fields["question"].strip() + SHORT_ANSWER, images=doc.images,
                   group_key=doc.group_key, generation=gen)

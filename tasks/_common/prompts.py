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


def prismatic_message(q_prompt: str) -> str:
    """The user message of vlm-evaluation's prompt builders (TRI's `vlm_eval/models/prismatic.py`
    and Cobra's fork `vlm_eval/models/cobra.py` at b0a691f): `q_prompt` is what the prompt function
    passes to `add_turn` ("\n" + question + instruction), which does `.replace("<image>", "").strip()`:
    leading whitespace of the question goes, trailing whitespace before the instruction stays."""
    return q_prompt.replace("<image>", "").strip()


def short_answer_prompt(doc: Doc, protocol: str) -> str:
    """VQAv2 and GQA (POPE under llava and prismatic): "<question>" + SHORT_ANSWER, the question as
    each harness reads it:
    LLaVA's question file text as it is (`llava_prompt`, when the data came with it, else the
    stripped question), vlm-evaluation's message (`prismatic_message`), lmms-eval's `doc_to_text`
    (the question as it is)."""
    question = doc.fields["question"]
    if protocol == "prismatic":
        return prismatic_message("\n" + question + SHORT_ANSWER)
    if protocol == "lmms-eval":
        return question + SHORT_ANSWER
    return doc.fields.get("llava_prompt") or question.strip() + SHORT_ANSWER


def short_answer_request(doc: Doc, protocol: str) -> Request:
    """VQAv2 and GQA: `short_answer_prompt`; 16 new tokens stopping at a blank line under lmms-eval
    (its task yamls), 128 under LLaVA's and TRI's scripts."""
    if protocol == "lmms-eval":
        gen = GenerationConfig(max_new_tokens=16, stop=LMMS_EVAL_STOP)
    else:
        gen = GenerationConfig(max_new_tokens=128)
    return Request(doc_id=doc.doc_id, prompt=short_answer_prompt(doc, protocol), images=doc.images,
                   group_key=doc.group_key, generation=gen)


def open_answer_request(doc: Doc, prompt: str, protocol: str) -> Request:
    """TextVQA and VizWiz: `prompt` with 1,024 new tokens stopping at "ASSISTANT:" under lmms-eval
    (its task yamls), 128 under LLaVA's and TRI's scripts."""
    if protocol == "lmms-eval":
        gen = GenerationConfig(max_new_tokens=1024, stop=ASSISTANT_STOP)
    else:
        gen = GenerationConfig(max_new_tokens=128)
    return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key, generation=gen)

"""Bridges from mmeval to other evaluation harnesses.

`mmeval.integrations.lmms_eval_models` exposes every mmeval model adapter to lmms-eval
(`lmms-eval --model vl_mamba ...`) through lmms-eval's `lmms_eval.models` entry-point group.
Nothing here is imported by mmeval itself; importing a bridge needs the other harness installed.
"""

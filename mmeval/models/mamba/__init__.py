"""Mamba-1 language-model engine (the LM under VL-Mamba and Cobra): model, recurrent state,
exact batched prefill, greedy decoding, checkpoint and tokenizer loading. Pure PyTorch
reference path everywhere; mamba_ssm / causal_conv1d CUDA kernels used when available."""
from .checkpoint import CheckpointError, load_mamba_lm, save_mamba_lm
from .config import MambaConfig
from .generation import greedy_generate
from .lm import MambaLM, MambaOutput
from .ops import kernels_available, selective_scan
from .state import MambaState
from .tokenizer import load_tokenizer

__all__ = [
    "CheckpointError", "MambaConfig", "MambaLM", "MambaOutput", "MambaState", "greedy_generate",
    "kernels_available", "load_mamba_lm", "load_tokenizer", "save_mamba_lm", "selective_scan",
]

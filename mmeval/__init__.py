"""mmeval: the evaluation harness for multimodal state-space language models (VL-Mamba, Cobra)."""

__version__ = "0.1.0"

"""Tokenizer loading for Mamba checkpoints: ``tokenizer.json`` from the checkpoint directory
(the state-spaces models use EleutherAI/gpt-neox-20b's tokenizer, placed beside the weights)
through transformers' PreTrainedTokenizerFast."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointError, PathLike, resolve_checkpoint_dir

DEFAULT_EOS = "<|endoftext|>"  # GPT-NeoX's end of text token (id 0)


def load_tokenizer(name_or_path: PathLike):
    """PreTrainedTokenizerFast from a checkpoint directory, a tokenizer.json path or a hub id.
    EOS defaults to <|endoftext|> when the vocabulary has it; pad defaults to EOS."""
    from transformers import PreTrainedTokenizerFast

    p = Path(str(name_or_path)).expanduser()
    tok_file = p if p.is_file() and p.name.endswith(".json") else None
    d = p.parent if tok_file is not None else resolve_checkpoint_dir(name_or_path)
    tok_file = tok_file or d / "tokenizer.json"
    if not tok_file.is_file():
        raise CheckpointError(
            f"missing tokenizer.json in {d}: the state-spaces Mamba checkpoints use the "
            "EleutherAI/gpt-neox-20b tokenizer; put its tokenizer.json in that directory")
    try:
        if (d / "tokenizer_config.json").is_file() and tok_file == d / "tokenizer.json":
            tok = PreTrainedTokenizerFast.from_pretrained(str(d))
        else:
            tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_file))
    except Exception as e:  # noqa: BLE001 - unreadable tokenizer: one clear error
        raise CheckpointError(f"cannot read tokenizer {tok_file}: {type(e).__name__}: "
                              f"{(str(e).strip().splitlines() or [''])[0]}") from None
    if tok.eos_token is None and DEFAULT_EOS in tok.get_vocab():
        tok.eos_token = DEFAULT_EOS
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok

"""Test helper (importable by any test): build a tiny word-level tokenizer.json with the
`tokenizers` library, GPT-NeoX-like (<|endoftext|> has id 0).

    from tiny_tokenizer import build_tiny_tokenizer   # tests/models is on sys.path under pytest
    path = build_tiny_tokenizer(tmp_path)              # writes tmp_path / "tokenizer.json"
"""
from pathlib import Path

SENTENCES = [
    "a photo of a cat sitting on a red mat",
    "the dog runs in the park with a ball",
    "what color is the car in the image ?",
    "answer the question using a single word or phrase .",
    "there are two people and one bus on the street",
    "yes no one two three four five",
]
SPECIALS = ["<|endoftext|>", "<|padding|>", "<unk>"]


def build_tiny_tokenizer(directory, sentences=SENTENCES) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(sentences, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    path = Path(directory) / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path

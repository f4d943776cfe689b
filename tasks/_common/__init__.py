"""What several tasks share, so that no task module imports another one.

The registry skips this package (its name starts with "_"), so nothing here is a benchmark:
- `prompts`: prompt suffixes, stop strings, and the short-answer request of VQAv2 and GQA;
- `candidates`: TRI's candidate-probability protocol (the next-token probabilities of a Yes/No or
  True/False pair), shared by POPE and VSR;
- `scoring`: accuracy helpers for per-sample dicts, and the `accuracy` headline;
- `cells`: reference answers and captions from a dataset cell;
- `outputs`: reading sample records and writing the files `finalize` leaves in a run folder;
- `captioning`: the base of the captioning tasks (coco_caption, nocaps, textcaps).
Reading data folders (finding files, parquet or not, hub or local copy) is `mmeval.data.sources`'s.

Each task's `load_docs` is a short dispatch: which layout the folder holds, then one reader per
layout (`_docs_from_rows` for the lmms-lab parquet rows, `_docs_from_official`, ...); a new layout
is one more reader and one more branch (for the captioning tasks, one more `official_layouts` entry).
"""

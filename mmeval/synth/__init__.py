"""Generated data and demo models: the whole product on a CPU with nothing to download.

- `images`: drawn pictures with known answers (coloured shapes in three slots, rendered words);
- `benchmarks`: mini versions of the ten benchmarks, written by each task's own writer in its real layout;
- `examples`: a handful of documents for every built-in task (`Task.write_example`; the contract tests);
- `training`: a LLaVA-format training set (other pictures) and captions for the alignment stage;
- `demo_models`: small VL-Mamba / Cobra models trained on it with the finetune module;
- `shipped`: those models as they ship in the package (`demo_weights/`), with their manifest;
- `demo_train`: `make demo-train`, which retrains them and compares with the shipped files;
- `defaults`: the embedded default of `mmeval run` (the released checkpoint where one can be fetched,
  else the shipped demo model + generated data when none are given);
- `commands`: the `mmeval synth` click command.
"""

"""The demo models that ship inside the package: `mmeval/synth/demo_weights/<family>/`.

Each family's folder is what `--model-args checkpoint=` (and Cobra's `vision=`) reads: the config,
the weights in safetensors, the tokenizer, and the random frozen demo towers, copied from a
training's checkpoint by the family's `DemoSpec.ship` (no trainer state). `demo_weights.json`
beside them records how they were made -- the command, the code version (DEMO_VERSION and the git
commit), the machine, each family's settings and cache key -- and the sha256 of every file, so
that `make demo-train` (`mmeval.synth.demo_train`) can retrain them and say whether it got the same.

Nothing here trains or touches the network: `model_args` is how the embedded default and `make
demo` find the demo models.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent / "demo_weights"
MANIFEST = "demo_weights.json"
RETRAIN_HINT = "make demo-train REPLACE=1 writes them"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every file under `folder`, sorted."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def read_manifest(root: Path = WEIGHTS_DIR) -> dict[str, Any]:
    f = root / MANIFEST
    try:
        return json.loads(f.read_text())
    except OSError:
        raise CheckpointError(f"the shipped demo weights are missing: no {f} ({RETRAIN_HINT})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{f}: not valid JSON ({exc})") from None


def family_dir(family: str, root: Path = WEIGHTS_DIR) -> Path:
    """The shipped checkpoint folder of `family`; a one-line error when it is not there."""
    d = root / family
    if not d.is_dir() or family not in read_manifest(root).get("models", {}):
        raise CheckpointError(f"no shipped demo model for {family} in {root} ({RETRAIN_HINT})")
    return d


def model_args(family: str, root: Path = WEIGHTS_DIR) -> dict[str, str]:
    """The --model-args that load the shipped demo model of `family`."""
    from mmeval.synth.demo_models import demo_spec

    return demo_spec(family).model_args(family_dir(family, root))


def export(checkpoint: Path, family: str, out: Path) -> dict[str, str]:
    """Write the shipped form of a trained demo checkpoint to `out` (replaced); returns its file digests."""
    from mmeval.synth.demo_models import demo_spec

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    demo_spec(family).ship(Path(checkpoint), out)
    for p in out.rglob("*"):  # safetensors writes 0600: installed package data must be readable by all
        p.chmod(0o755 if p.is_dir() else 0o644)
    return file_digests(out)


@dataclass
class FileComparison:
    path: str
    status: str  # "identical" | "differs" | "not in the shipped weights" | "not in the retrained weights"
    detail: str = ""


@dataclass
class Comparison:
    """A retrained family folder against the shipped one."""

    family: str
    files: list[FileComparison] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return bool(self.files) and all(f.status == "identical" for f in self.files)

    def lines(self) -> list[str]:
        if self.identical:
            return [f"{self.family}: bit for bit identical to the shipped weights ({len(self.files)} files)"]
        out = [f"{self.family}: differs from the shipped weights"]
        out += [f"  {f.path}: {f.status}" + (f" ({f.detail})" if f.detail else "")
                for f in self.files if f.status != "identical"]
        return out


def tensor_differences(a: Path, b: Path) -> str:
    """How two safetensors files differ: keys, shapes, and the largest absolute difference."""
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    if ta.keys() != tb.keys():
        return f"tensor names differ: {sorted(ta.keys() ^ tb.keys())[:4]}"
    worst, name = 0.0, ""
    for k in sorted(ta):
        if ta[k].shape != tb[k].shape:
            return f"{k}: shape {tuple(ta[k].shape)} vs {tuple(tb[k].shape)}"
        d = float((ta[k].double() - tb[k].double()).abs().max()) if ta[k].numel() else 0.0
        if d > worst:
            worst, name = d, k
    return f"largest absolute difference {worst:.3g} in {name}" if name else "same tensors, other bytes"


def compare(retrained: Path, shipped: Path, family: str) -> Comparison:
    """Every file of the retrained folder against the shipped one, by sha256 (safetensors files that
    differ are also compared tensor by tensor)."""
    new, old = file_digests(retrained), file_digests(shipped)
    result = Comparison(family)
    for path in sorted(new.keys() | old.keys()):
        if path not in old:
            result.files.append(FileComparison(path, "not in the shipped weights"))
        elif path not in new:
            result.files.append(FileComparison(path, "not in the retrained weights"))
        elif new[path] == old[path]:
            result.files.append(FileComparison(path, "identical"))
        else:
            detail = tensor_differences(retrained / path, shipped / path) if path.endswith(".safetensors") else ""
            result.files.append(FileComparison(path, "differs", detail))
    return result

"""Parameters kept in float32 whatever the model dtype: the SSM's A_log and D.

mamba_ssm (`mamba_ssm/modules/mamba_simple.py`, v1.2.0 to HEAD) creates `A_log` and `D` in float32
("Keep A_log in fp32", "Keep in fp32") whatever the factory dtype, and its scans read them through
`.float()`; the step bias `dt_proj.bias` takes the model dtype (read as `.float()` too). It keeps them float32 only at
construction: `MambaLMHeadModel.from_pretrained` builds in the target dtype and copies the checkpoint
into the existing parameters (each keeps its dtype), but a later `model.to(torch.bfloat16)` casts
them too (Cobra's evaluation does that). Here they stay float32 through `.to()`, `.half()`,
`.bfloat16()` as well: a module that derives from `KeepsFP32Params` lists them in `fp32_params`, and
its `_apply` (what every dtype/device conversion goes through) moves them to the new device but never
below float32. Loading a checkpoint written in bf16 copies into the float32 parameters
(`load_state_dict` keeps the parameter's dtype), so it loads as before, upcast exactly.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

_BELOW_FP32 = (torch.float16, torch.bfloat16)


class KeepsFP32Params(nn.Module):
    """Base for modules whose parameters named in `fp32_params` never drop below float32."""

    fp32_params: ClassVar[tuple[str, ...]] = ()

    def _apply(self, fn, recurse=True):
        keep = set()
        for name in self.fp32_params:
            p = self._parameters.get(name)
            if p is not None:
                keep.add(id(p))
                if p.grad is not None:
                    keep.add(id(p.grad))
        if not keep:
            return super()._apply(fn, recurse)

        def convert(t):
            out = fn(t)
            if id(t) in keep and out.dtype in _BELOW_FP32:
                return t.to(device=out.device, dtype=torch.float32)
            return out

        return super()._apply(convert, recurse)

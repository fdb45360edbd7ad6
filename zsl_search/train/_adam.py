"""Adam for the solo `Trainer`: PyTorch's fused Adam kernel, called directly.

`torch.optim.Adam(fused=True)` runs this very kernel, but every `torch.optim.Optimizer` imports
`torch._dynamo` the first time it is built or stepped (its methods are wrapped to keep compilers
out), and that import costs each fresh process 1-1.8 s of CPU before its first step: once per
trial worker in a search, once per trial when workers are not reused. Calling the kernel here
gives the same update, element for element (`tests/test_train.py`), without the import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

_EPS = 1e-8  # torch.optim.Adam's default


class Adam:
    """Adam without weight decay or amsgrad, as `torch.optim.Adam(fused=True)` steps it: moments
    and a step count per tensor, made when the tensor first has a gradient and advanced only on
    steps where it has one. ``param_groups[0]["lr"]`` is the rate, so a schedule sets it as it
    would on a `torch.optim` optimiser."""

    def __init__(self, params: Iterable[Tensor], *, lr: float, betas: tuple[float, float]) -> None:
        self.params = list(params)
        self.param_groups = [{"lr": lr}]
        self.betas = betas
        n = len(self.params)
        self.exp_avg: list[Tensor | None] = [None] * n
        self.exp_avg_sq: list[Tensor | None] = [None] * n
        self.steps: list[Tensor | None] = [None] * n

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        for i in live:
            if self.steps[i] is None:
                p = self.params[i]
                self.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.steps[i] = torch.zeros((), dtype=torch.float32, device=p.device)
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        b1, b2 = self.betas
        torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                           [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [], steps,
                           lr=self.param_groups[0]["lr"], beta1=b1, beta2=b2, weight_decay=0.0, eps=_EPS,
                           amsgrad=False, maximize=False)

    def state_dict(self) -> dict[str, Any]:
        def cpu(ts: list[Tensor | None]) -> list[Tensor | None]:
            return [None if t is None else t.cpu() for t in ts]

        return {"lr": self.param_groups[0]["lr"], "exp_avg": cpu(self.exp_avg), "exp_avg_sq": cpu(self.exp_avg_sq),
                "steps": cpu(self.steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.param_groups[0]["lr"] = state["lr"]
        for name in ("exp_avg", "exp_avg_sq", "steps"):
            saved = state[name]
            if len(saved) != len(self.params):
                raise ValueError(f"optimizer state holds {len(saved)} tensors, this model has {len(self.params)}")
            # Copies, never the saved tensors themselves: a state loaded twice must not share moments.
            setattr(self, name, [None if t is None else t.to(p.device, copy=True) for t, p in zip(saved, self.params)])

"""The distilled student's head as torch modules, for training only (scoring is numpy: pars.predictor.student).

Its own module, with torch and nothing heavier, so that a refit (pars.learning.refit, in its own process) does
not import the encoder's stack.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pars.predictor.student import StaticStudent


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """A detached fp32 numpy copy (what `StaticStudent` holds)."""
    return tensor.detach().float().numpy().copy()


class StudentHead(nn.Module):
    """The student's head as torch modules, for training only: out(gelu(hidden(features))), features [B, dim + 1].
    Distillation trains it with the static vectors; `pars serve --learn` continues it alone (pars.learning.refit)."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(features, hidden)
        self.out = nn.Linear(hidden, 1)

    @classmethod
    def of(cls, student: StaticStudent) -> StudentHead:
        """The head of a trained student, warm (its weights copied in)."""
        head = cls(*student.hidden_weight.shape)
        with torch.no_grad():
            head.hidden.weight.copy_(torch.from_numpy(student.hidden_weight.T.copy()))
            head.hidden.bias.copy_(torch.from_numpy(student.hidden_bias))
            head.out.weight.copy_(torch.from_numpy(student.out_weight[None, :].copy()))
            head.out.bias.fill_(student.out_bias)
        return head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.gelu(self.hidden(features), approximate="tanh"))[:, 0]  # [B]

    def weights(self) -> dict[str, np.ndarray]:
        """The head's weights under `StaticStudent`'s names."""
        return {"hidden_weight": as_array(self.hidden.weight.T), "hidden_bias": as_array(self.hidden.bias),
                "out_weight": as_array(self.out.weight[0]), "out_bias": as_array(self.out.bias)}

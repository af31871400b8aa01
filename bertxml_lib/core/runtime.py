"""Seeds, devices and precision policy shared by pretraining, fine-tuning and inference."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """One seed flows everywhere: Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def get_device(preference: str = "auto") -> torch.device:
    """`auto` picks CUDA when present (the local rank's GPU under torchrun), else CPU."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(preference)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA only: on CPU bf16 is ~50x slower here, so CPU always runs fp32."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(n: int) -> None:
    """Bound intra-op threads (0 leaves torch's default)."""
    if n > 0:
        torch.set_num_threads(n)

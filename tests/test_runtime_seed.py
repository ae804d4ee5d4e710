"""`seed_everything`: repeatable draws and torch's deterministic kernels, without loading torch.compile."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, random, numpy as np, torch
from emoclip_lib.runtime import seed_everything
seed_everything(3)
first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
seed_everything(3)
assert first == (random.random(), float(np.random.rand()), float(torch.rand(1)))
assert torch.are_deterministic_algorithms_enabled()
assert torch.is_deterministic_algorithms_warn_only_enabled()
print("inductor" if "torch._inductor.config" in sys.modules else "no inductor")
"""


def test_seed_everything_sets_deterministic_kernels_without_importing_the_compiler() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "no inductor"

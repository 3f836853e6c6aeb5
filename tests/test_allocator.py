"""cvdemo.allocator: large tensors are reused from malloc's heap instead of being mapped, faulted in and
unmapped on every batch (the system time a frozen backbone's feature pass spent on a 2-core machine)."""

import json
import os
import subprocess
import sys

import pytest

# Four forward passes of two convolutions whose outputs (16 x 32 x 128 x 128 floats: 33.5 MB each) are just above
# glibc's default limit for reusing memory; prints whether the settings took and the minor page faults (pages the
# kernel had to map and zero) of those passes, after two passes of warm-up.
PROBE = """
import json, resource, sys, torch
from cvdemo.allocator import tune_cpu_allocator
took = tune_cpu_allocator() if sys.argv[1] == "tuned" else False
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1))
x = torch.rand(16, 3, 128, 128)
with torch.no_grad():
    for _ in range(2):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        net(x)
print(json.dumps({"took": took, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CVDEMO_TUNE_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120,
                         env={**clean, **env}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt: Linux only")
def test_a_networks_large_activations_are_reused_instead_of_faulted_in_every_pass():
    default, tuned = probe("default"), probe("tuned")
    assert tuned["took"] and not default["took"]
    pages = 4 * 2 * 33_554_432 // 4096  # two fresh 33.5 MB outputs a pass, every page faulted in
    assert default["faults"] > pages / 2, default
    assert tuned["faults"] < default["faults"] / 10, (tuned, default)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt: Linux only")
def test_the_users_own_settings_win_and_it_can_be_switched_off():
    assert not probe("tuned", MALLOC_ARENA_MAX="2")["took"]
    assert not probe("tuned", CVDEMO_TUNE_MALLOC="0")["took"]

"""p4d.precompute.malloc: freed large buffers are reused instead of page-faulted in again."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, resource, sys
import numpy as np
from p4d.precompute.malloc import tune_malloc
tuned = tune_malloc()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(12 << 20, np.float32)  # warm-up: 48 MB, the size of one paper-shape clip's float32 F_4D
before = faults()
for _ in range(8):
    a = np.ones(12 << 20, np.float32)
    del a
print(json.dumps({"tuned": tuned, "faults": faults() - before}))
"""


def _run(**env) -> dict:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_TRIM_THRESHOLD_": "65536", **env}  # as dask's nanny sets
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=full, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_malloc_reuses_large_buffers_and_can_be_turned_off():
    tuned, plain = _run(), _run(P4D_MALLOC_TUNE="0")
    assert tuned["tuned"] is True and plain["tuned"] is False
    # untuned, each of the 8 buffers is mmap-ed afresh and faulted in (>= 1 fault each, 12k with 4 KiB pages)
    assert plain["faults"] >= 8
    assert tuned["faults"] * 10 < plain["faults"], (tuned, plain)


def test_only_dask_worker_processes_are_tuned():
    """In-process callers (tests, tools writing videos with libx264) keep glibc's defaults."""
    from distributed import Client, LocalCluster

    from p4d.precompute.worker import TeacherJob, teacher_identity
    from p4d.teacher.presets import get_preset

    job = TeacherJob(preset=get_preset("tiny"), weights=None, seed=0, device="cpu", dtype="fp32", batch_size=1,
                     max_pixels=None)
    # in a fresh interpreter: the pytest process may already hold a tuned state from a bench run in-process
    probe = ("from p4d.precompute import malloc\n"
             "from p4d.precompute.worker import TeacherJob, get_teacher\n"
             "from p4d.teacher.presets import get_preset\n"
             "get_teacher(TeacherJob(preset=get_preset('tiny'), weights=None, seed=0, device='cpu', dtype='fp32',"
             " batch_size=1, max_pixels=None))\n"
             "print(malloc._STATE)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out

    def state():
        from p4d.precompute import malloc

        return list(malloc._STATE)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) \
            as cluster, Client(cluster) as client:
        assert list(client.run(state).values()) == [[]]
        client.submit(teacher_identity, job, pure=False).result()
        assert list(client.run(state).values()) == [[True]]

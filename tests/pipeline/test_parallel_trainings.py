"""Trainings in forked workers (one per core, one torch thread each) equal the same trainings one after another on
one thread: the same records and bit-identical checkpoints, for notebook 03's seeds (three on two cores: the third
in this process on one thread) and notebook 04's leave-one-class-out; CUDA and torchrun keep them in one process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import tiny_chain_profile
from emoclip_lib import workers
from emoclip_lib.pipeline import notebook_settings, reproduce, run_zeroshot, train_run, training
from emoclip_lib.workers import torch_workers

PROFILE = tiny_chain_profile("tiny chain for the parallel-training tests", ["01", "02"], n_seeds=3, loco_epochs=1)


def _states(run, folder: str) -> dict[str, dict[str, torch.Tensor]]:
    return {str(p.relative_to(run)): torch.load(p, weights_only=True)["state_dict"]
            for p in sorted((run / folder).rglob("best.pt"))}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[f].keys() == b[f].keys() and all(torch.equal(a[f][k], b[f][k])
                                                                              for k in a[f]) for f in a)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("parallel")
    profile = base / "tiny.yaml"
    profile.write_text(PROFILE)
    reproduce(str(profile), base / "run", progress=False)
    return profile, base / "run"


@pytest.mark.skipif(not workers.can_fork() or workers.cpu_count() < 2, reason="needs fork and 2 cores")
def test_forked_trainings_equal_serial_ones(prepared, tmp_path, monkeypatch):
    profile, source = prepared
    runs = {}
    for name in ("serial", "forked"):
        run = tmp_path / name
        shutil.copytree(source, run)  # the same prepared data and pretrained backbone for both
        monkeypatch.setattr(training, "torch_workers",
                            torch_workers if name == "forked" else (lambda device, jobs: 1))
        runs[name] = _run_03_04(profile, run)
        monkeypatch.undo()
    serial, forked = runs["serial"], runs["forked"]
    assert [r["seed"] for r in forked["03"]] == [0, 1, 2]
    assert json.dumps(forked["03"], sort_keys=True) == json.dumps(serial["03"], sort_keys=True)
    assert len(forked["loco"]) >= 2  # held-out classes with a test clip in the tiny world
    assert json.dumps(forked["loco"], sort_keys=True) == json.dumps(serial["loco"], sort_keys=True)
    assert _same(_states(tmp_path / "forked", "train"), _states(tmp_path / "serial", "train"))
    assert _same(_states(tmp_path / "forked", "loco"), _states(tmp_path / "serial", "loco"))
    assert len(_states(tmp_path / "forked", "loco")) == len(forked["loco"])


def _run_03_04(profile, run) -> dict:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the serial path at one thread, as every worker runs
    try:
        trained = train_run(run, notebook_settings("03", str(profile), {}))
        _, evaluated = run_zeroshot(run, notebook_settings("04", str(profile), {}))
    finally:
        torch.set_num_threads(previous)
    for record in trained["runs"]:
        record["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]
    return {"03": trained["runs"], "loco": evaluated["loco"]["classes"]}


def test_trainings_stay_in_this_process_on_cuda_under_torchrun_and_for_one_job(monkeypatch):
    assert torch_workers(torch.device("cuda"), 8) == 1
    assert torch_workers(torch.device("cpu"), 1) == 1
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    assert torch_workers(torch.device("cpu"), 11) == 2
    assert torch_workers(torch.device("cpu"), 2) == 2
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert torch_workers(torch.device("cpu"), 11) == 1


def test_left_over_trainings_run_here_on_one_thread(monkeypatch):
    if not workers.can_fork():
        pytest.skip("needs fork")
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        where = training.run_trainings(lambda job, progress: (job, os.getpid(), torch.get_num_threads()),
                                       [0, 1, 2], torch.device("cpu"), "t")
        assert torch.get_num_threads() == 2  # restored after the left-over training
    finally:
        torch.set_num_threads(previous)
    assert [w[0] for w in where] == [0, 1, 2]
    assert where[0][1] != os.getpid() and where[1][1] != os.getpid()  # two in workers
    assert where[2][1:] == (os.getpid(), 1)  # the third here, on the workers' one thread


def test_workers_inherit_the_optimizer_import_from_here():
    # a process's first torch optimizer imports torch._dynamo (~0.9 s): done once before the fork, not per worker
    code = ("import sys, torch\n"
            "from emoclip_lib import workers\n"
            "from emoclip_lib.pipeline import training\n"
            "assert 'torch._dynamo' not in sys.modules\n"
            "workers.cpu_count = lambda: 2\n"
            "print(training.run_trainings(lambda job, progress: 'torch._dynamo' in sys.modules, [0, 1],\n"
            "                             torch.device('cpu'), 't'))\n")
    if not workers.can_fork():
        pytest.skip("needs fork")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True]"


def test_a_failing_training_in_a_worker_raises_its_error_here():
    def fail(job: int, progress: bool) -> int:
        if job == 3:
            raise ValueError(f"job {job} failed")
        return job

    if not workers.can_fork() or workers.cpu_count() < 2:
        pytest.skip("needs fork and 2 cores")
    with pytest.raises(ValueError, match="job 3 failed"):
        training.run_trainings(fail, list(range(6)), torch.device("cpu"), "t")
    assert training.run_trainings(lambda job, progress: job * 2, list(range(6)), torch.device("cpu"), "t") == \
        [0, 2, 4, 6, 8, 10]

"""Multi-process training: seeded sharding, masked global-batch loss, and 2 gloo processes == 1 process."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from conftest import write_clip
import torch.multiprocessing as mp

from emoclip_lib.train import distributed as D
from emoclip_lib.model.checkpoint import build_model
from emoclip_lib.data.classes import CANONICAL_CLASSES
from emoclip_lib.errors import UserError
from emoclip_lib.data.manifest import ManifestRow
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig, contrastive_loss
from emoclip_lib.train.config import TrainConfig
from emoclip_lib.train.step import global_contrastive_loss
from emoclip_lib.train.loop import train

CLASSES = CANONICAL_CLASSES[:7]
# (name, use_cache, freeze_text): the cached path with cached captions, and decoded frames with a training
# text tower (its embeddings are gathered with gradient too).
SETUPS = (("cached", True, True), ("frames", False, False))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_process_batches_together_are_the_single_process_batch():
    data = list(range(11))
    single = list(D.PositionedSampler(D.make_sampler(data, D.DistContext(), seed=5), D.DistContext()))
    shards = [list(D.PositionedSampler(D.make_sampler(data, D.DistContext(rank=r, world_size=2), seed=5),
                                       D.DistContext(rank=r, world_size=2))) for r in range(2)]
    assert [pos for _, pos in single] == list(range(11))
    local = 2  # global batch 4 over 2 processes
    for k in range(3):
        together = [pair for shard in shards for pair in shard[k * local:(k + 1) * local]]
        real = sorted((pair for pair in together if pair[1] < 11), key=lambda pair: pair[1])
        assert real == single[4 * k:4 * (k + 1)]
    assert sorted(len(s) for s in shards) == [6, 6]  # padded with one duplicate (position 11)


def test_masked_loss_ignores_missing_slots():
    gen = torch.Generator().manual_seed(0)
    video, text = torch.randn(3, 8, generator=gen), torch.randn(3, 8, generator=gen)
    loss, n = global_contrastive_loss(video, text, torch.tensor(10.0), torch.tensor([0, 2, 3]), 5, D.DistContext())
    v, t = torch.nn.functional.normalize(video, dim=-1), torch.nn.functional.normalize(text, dim=-1)
    assert n == 3 and loss.item() == pytest.approx(contrastive_loss(10.0 * v @ t.t()).item(), abs=1e-6)
    empty, n = global_contrastive_loss(video[:1], text[:1], torch.tensor(10.0), torch.tensor([], dtype=torch.long),
                                       2, D.DistContext())
    assert n == 0 and empty.item() == 0.0


def test_single_process_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = D.init_from_env("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(UserError, match="torchrun"):
        D.init_from_env("cpu")
    with pytest.raises(UserError, match="not a device"):
        D.resolve_device("gpu0")




def make_rows(root: Path) -> list[ManifestRow]:
    rows = []
    for i in range(11):
        write_clip(root / f"c{i}.mp4", seed=i)
        rows.append(ManifestRow(f"c{i}.mp4", CLASSES[i % 7], f"expression caption {i}", row_number=i + 2))
    return rows


def run(root: Path, rows: list[ManifestRow], run_dir: Path, use_cache: bool, freeze_text: bool):
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4),
                                    freeze_text=freeze_text), seed=0)
    config = TrainConfig(epochs=2, batch_size=4, clip_len=4, downsample=2, lr=0.1, use_cache=use_cache,
                         cache_dir=str(root / "cache"))
    # 9 training rows: the last global batch is partial and the sampler pads one duplicate
    train(model, rows[:9], rows[9:], root, CLASSES, config, run_dir=run_dir, progress=False)
    return model.state_dict()


def worker(rank: int, root: Path, rows: list[ManifestRow], port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    ctx = D.init_from_env("cpu")
    assert ctx.owns_group and ctx.world_size == 2
    for name, use_cache, freeze_text in SETUPS:
        state = run(root, rows, root / f"ddp_{name}_rank{rank}", use_cache, freeze_text)
        if rank == 0:
            torch.save(state, root / f"ddp_{name}.pt")
    D.shutdown(ctx)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.filterwarnings("ignore:Grad strides do not match")
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    rows = make_rows(tmp_path)
    single = {name: run(tmp_path, rows, tmp_path / f"single_{name}", c, f) for name, c, f in SETUPS}
    # fork: the children inherit the imported modules (spawning would re-import torch in each)
    mp.start_processes(worker, args=(tmp_path, rows, free_port()), nprocs=2, start_method="fork")
    for name, _, _ in SETUPS:
        ddp = torch.load(tmp_path / f"ddp_{name}.pt", weights_only=True)
        for key, value in single[name].items():
            assert torch.allclose(value, ddp[key], atol=1e-5), (name, key)
        assert (tmp_path / f"ddp_{name}_rank0" / "last.pt").is_file()
        assert (tmp_path / f"ddp_{name}_rank0" / "history.json").is_file()
        assert not any(p.is_file() for p in (tmp_path / f"ddp_{name}_rank1").rglob("*")), "rank 1 wrote files"

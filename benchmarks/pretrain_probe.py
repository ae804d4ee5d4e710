"""How much of the face's expression the pretrained tiny CLIP's image tower sees (a linear probe).

Pretrains the `tiny` CLIP of the synthetic profile on a run's training clips, with and without the synthetic
web pictures (`emoclip_lib.synth.web`), then fits a ridge probe from frozen image embeddings to the drawn
expression components of held-out web pictures (other identities, another seed) and reports R^2 per
component. Needs a run directory where notebook 01 (or `emoclip train --stage prepare`) has run.

    .venv/bin/python benchmarks/pretrain_probe.py --run-dir runs/notebooks      # ~6 min on 2 CPU cores

Writes benchmarks/results/pretrain_probe-<date>.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import RidgeCV

from emoclip_lib.model.clip import load_clip
from emoclip_lib.train.pretrain import embed_images, pretrain_clip
from emoclip_lib.data.manifest import select
from emoclip_lib.data.preprocess import resize_center_crop_uint8
from emoclip_lib.pipeline.training import training_rows
from emoclip_lib.synth.faces import COMPONENTS
from emoclip_lib.synth.web import web_still

CONFIGS = {"clips only (60 epochs)": dict(epochs=60, web_pictures=0),
           "clips + 6000 web pictures (14 epochs)": dict(epochs=14, web_pictures=6000)}


def probe_set(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(n, 3, 32, 32) uint8 web pictures of `seed` and their (n, len(COMPONENTS)) drawn intensities."""
    pictures = [web_still(i, seed) for i in range(n)]
    frames = torch.from_numpy(np.stack([p.frame for p in pictures])).permute(0, 3, 1, 2)  # (n, 3, 112, 112)
    images = resize_center_crop_uint8(frames, 32)
    targets = np.array([[p.apex.get(c, 0.0) for c in COMPONENTS] for p in pictures])
    return images, targets


def probe_r2(model: torch.nn.Module, train: tuple, test: tuple) -> np.ndarray:
    """R^2 per component of a ridge probe fitted on `train` embeddings and scored on `test`."""
    fit = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(embed_images(model, train[0]).numpy(), train[1])
    pred = fit.predict(embed_images(model, test[0]).numpy())
    return 1.0 - ((pred - test[1]) ** 2).mean(0) / test[1].var(0).clip(min=1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default="runs/notebooks")
    parser.add_argument("--probe-pictures", type=int, default=3000, help="held-out pictures (2/3 fit, 1/3 score)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    rows, root, _ = training_rows(Path(args.run_dir))
    first = select(rows, fold=sorted({r.fold for r in rows if r.fold is not None})[0], split="train")
    images, targets = probe_set(args.probe_pictures, seed=1000)
    cut = 2 * args.probe_pictures // 3
    train, test = (images[:cut], targets[:cut]), (images[cut:], targets[cut:])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in {"random init (no pretraining)": None, **CONFIGS}.items():
            t0 = time.perf_counter()
            model = (pretrain_clip(first, root, Path(tmp) / "clip.pt", seed=0, progress=False, **cfg) if cfg
                     else load_clip("tiny", seed=0))
            r2 = probe_r2(model.eval(), train, test)
            results[name] = {"seconds": round(time.perf_counter() - t0, 1), "mean_r2": round(float(r2.mean()), 3),
                             "r2": {c: round(float(v), 3) for c, v in zip(COMPONENTS, r2)}}
            print(name, results[name]["mean_r2"], f"{results[name]['seconds']} s", flush=True)
    top = sorted(COMPONENTS, key=lambda c: -results[list(CONFIGS)[-1]]["r2"][c])[:5]
    lines = ["| pretraining | seconds | mean R^2 | " + " | ".join(top) + " |", "|---" * (3 + len(top)) + "|"]
    lines += [f"| {n} | {r['seconds']} | {r['mean_r2']} | " + " | ".join(str(r["r2"][c]) for c in top) + " |"
              for n, r in results.items()]
    print("\n".join(lines))
    out = Path(args.out) / f"pretrain_probe-{datetime.date.today()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"probe_pictures": args.probe_pictures, "results": results,
                               "table": lines}, indent=1) + "\n")


if __name__ == "__main__":
    main()

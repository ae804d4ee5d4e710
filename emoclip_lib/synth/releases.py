"""The synthetic world as four dataset releases laid out exactly as the real ones (`emoclip synth --layout official`).

Under `OUT/`:
- `MAFW/`: `Train_Test_Set/{single,compound}/with_caption_new/set_{1..5}/{train,test}.txt` (GBK, tab-separated
  `clip.mp4<TAB>label[_label]<TAB>Chinese caption<TAB>English caption`, CRLF) and `data/faces/<clip id>/`
  JPEG frame folders; 11 classes and compounds, captions, subject-disjoint folds; and, beyond the real
  release, `subjects.csv` (who is in each clip, read by `data.converters.with_subjects`; DFEW-like too).
- `DFEW/`: `EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv` (`video_name,label`, labels 1..7)
  and `Clip/clip_224x224/<5-digit id>/` JPEG frame folders; new identities, no captions.
- `FERV39k/`: `Data/4_setups/All_scenes/{train,test}_All.csv` (`scene/Emotion/clip label`) and
  `Data/2_ClipsforFaceCrop/<scene>/<Emotion>/<clip>/` frame folders; one train/test split.
- `AFEW/`: `Train/<Emotion>/<clip>.avi` and `Val/<Emotion>/<clip>.avi` (Motion-JPEG).
- `interviews/`: the interview cohort (manifest, videos, planted latent scores), `class_descriptions.yaml`
  (in the captions' vocabulary) and `world.json`.
`emoclip manifest mafw --root OUT/MAFW` (and dfew, ferv39k, afew) convert them as they convert the real releases.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from ..data import BASIC_CLASSES, CANONICAL_CLASSES
from .descriptions import write_class_descriptions
from ..workers import parallel_run
from .recipes import ClipSpec, render_clip
from .world import SYNTH_VERSION, WorldSize, check_seed, plan_corpus, resolve_size, write_interviews

RELEASES_VERSION = "emoclip-releases-2"  # 2: subjects.csv
RELEASE_DIRS: dict[str, str] = {"mafw": "MAFW", "dfew": "DFEW", "ferv39k": "FERV39k", "afew": "AFEW"}
DFEW_NUMBERS: dict[str, int] = {"happiness": 1, "sadness": 2, "neutral": 3, "anger": 4, "surprise": 5,
                                "disgust": 6, "fear": 7}
FOLDER_NAMES: dict[str, str] = {"anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy",
                                "neutral": "Neutral", "sadness": "Sad", "surprise": "Surprise"}
CHINESE: dict[str, str] = {  # a short Chinese caption per class, as MAFW's lists carry one beside the English
    "anger": "愤怒", "disgust": "厌恶", "fear": "恐惧", "happiness": "快乐", "neutral": "平静", "sadness": "悲伤",
    "surprise": "惊讶", "contempt": "轻蔑", "anxiety": "焦虑", "helplessness": "无助", "disappointment": "失望",
}
SCENES: tuple[str, ...] = ("Daily", "Talkshow", "Interview", "Drama")
JPEG_QUALITY = 92


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    """One JPEG per frame (`00001.jpg`, ...), RGB frames (T, H, W, 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def _write_avi(path: Path, frames: np.ndarray, fps: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), frames.shape[2:0:-1])
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _render_frames_to(job: tuple[ClipSpec, Path]) -> None:
    """Render one clip and write it as a frame folder (a worker's task: nothing large goes back)."""
    _write_frames(job[1], render_clip(job[0]))


def _render_avi_to(job: tuple[ClipSpec, Path]) -> None:
    """Render one clip and write it as an MJPG `.avi` (a worker's task)."""
    _write_avi(job[1], render_clip(job[0]))


def _text_file(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode(encoding))


def _clip_id(spec: ClipSpec) -> str:
    return f"{spec.index + 1:05d}"


def _subjects(out: Path, paths: list[tuple[str, ClipSpec]]) -> None:
    """`subjects.csv` beside the release: who is in each clip (the real releases have none; see
    `data.converters.with_subjects`)."""
    _text_file(out / "subjects.csv", ["path,subject"] + [f"{p},{s.person.subject}" for p, s in paths])


def _mafw(out: Path, specs: list[ClipSpec], progress: bool) -> None:
    parallel_run(_render_frames_to, [(s, out / "data" / "faces" / _clip_id(s)) for s in specs], "MAFW-like", progress)
    _subjects(out, [(f"data/faces/{_clip_id(s)}", s) for s in specs])
    for kind, compound in (("single", False), ("compound", True)):
        chosen = [s for s in specs if (len(s.labels) > 1) == compound]
        for fold in range(1, 6):
            for split in ("train", "test"):
                rows = [f"{_clip_id(s)}.mp4\t{'_'.join(s.labels)}\t{'，'.join(CHINESE[c] for c in s.labels)}"
                        f"\t{s.caption}" for s in chosen if (s.fold == fold) == (split == "test")]
                _text_file(out / "Train_Test_Set" / kind / "with_caption_new" / f"set_{fold}" / f"{split}.txt",
                           rows, encoding="gbk", newline="\r\n")


def _dfew(out: Path, specs: list[ClipSpec], progress: bool) -> None:
    parallel_run(_render_frames_to, [(s, out / "Clip" / "clip_224x224" / _clip_id(s)) for s in specs], "DFEW-like",
                progress)
    _subjects(out, [(f"Clip/clip_224x224/{_clip_id(s)}", s) for s in specs])
    for fold in range(1, 6):
        for split in ("train", "test"):
            rows = ["video_name,label"] + [f"{int(_clip_id(s))},{DFEW_NUMBERS[s.labels[0]]}" for s in specs
                                           if (s.fold == fold) == (split == "test")]
            _text_file(out / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv", rows)


def _ferv39k(out: Path, specs: list[ClipSpec], progress: bool) -> None:
    lists: dict[str, list[str]] = {"train": [], "test": []}
    rels = [f"{SCENES[s.index % len(SCENES)]}/{FOLDER_NAMES[s.labels[0]]}/{_clip_id(s)}" for s in specs]
    parallel_run(_render_frames_to, [(s, out / "Data" / "2_ClipsforFaceCrop" / rel) for s, rel in zip(specs, rels)],
                "FERV39k-like", progress)
    for spec, rel in zip(specs, rels):
        lists["test" if spec.fold == 1 else "train"].append(f"{rel} {BASIC_CLASSES.index(spec.labels[0])}")
    for split, rows in lists.items():
        _text_file(out / "Data" / "4_setups" / "All_scenes" / f"{split}_All.csv", rows)


def _afew(out: Path, specs: list[ClipSpec], progress: bool) -> None:
    jobs = [(s, out / ("Val" if s.fold == 1 else "Train") / FOLDER_NAMES[s.labels[0]] / f"{_clip_id(s)}.avi")
            for s in specs]
    parallel_run(_render_avi_to, jobs, "AFEW-like", progress)


WRITERS = {"mafw": ("mafw_like", _mafw), "dfew": ("dfew_like", _dfew), "ferv39k": ("ferv39k_like", _ferv39k),
           "afew": ("afew_like", _afew)}


def releases_info(out_dir: str | Path) -> dict | None:
    """The `world.json` of releases written by `write_releases` (None when absent or unreadable).

    Args:
        out_dir: the folder given to `write_releases`.
    """
    try:
        info = json.loads((Path(out_dir) / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("layout") == RELEASES_VERSION else None


def write_releases(out_dir: str | Path, size: str | WorldSize = "small", seed: int = 0,
                   progress: bool = True) -> dict:
    """Write the synthetic world as MAFW-, DFEW-, FERV39k- and AFEW-like releases plus the interview cohort.

    Args:
        out_dir: output folder (created; existing files with the same names are overwritten).
        size: "tiny", "small", "medium" or a WorldSize.
        seed: non-negative world seed; the same seed gives byte-identical files.
        progress: show progress bars.
    Returns:
        what `world.json` holds: version, seed, size, the release folders (relative to `out_dir`), the
        interview manifest, the class descriptions and the clip counts.
    """
    check_seed(seed)
    sz = resolve_size(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, (corpus, writer) in WRITERS.items():
        specs = plan_corpus(corpus, sz, seed)
        writer(out / RELEASE_DIRS[name], specs, progress)
        counts[name] = len(specs)
    counts["interviews"] = write_interviews(out, sz, seed, progress)
    write_class_descriptions(out / "class_descriptions.yaml", seed=seed)
    info = {"layout": RELEASES_VERSION, "version": SYNTH_VERSION, "seed": seed,
            "size": size if isinstance(size, str) else "custom", "size_params": asdict(sz),
            "releases": dict(RELEASE_DIRS), "interviews": "interviews/manifest.csv",
            "latent_scores": "interviews/latent_scores.csv", "descriptions": "class_descriptions.yaml",
            "classes": {"mafw": list(CANONICAL_CLASSES), **{k: list(BASIC_CLASSES) for k in ("dfew", "ferv39k", "afew")}},
            "counts": counts}
    (out / "world.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info

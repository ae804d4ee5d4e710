"""`emoclip predict` and `emoclip_lib.zeroshot.predict`: sliding-window zero-shot predictions on video files."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from emoclip_lib import cli
from emoclip_lib.model.checkpoint import build_model, save_checkpoint
from emoclip_lib.errors import DataError, UserError
from emoclip_lib.data.faces import FaceNotFound
from emoclip_lib.model.emoclip import ModelConfig, TemporalConfig
from emoclip_lib.cli.predict import plot_timeline, predictions_to_json, write_predictions
from emoclip_lib.zeroshot.predict import predict_videos, video_summary
from emoclip_lib.zeroshot.prompts import class_embeddings, class_text_embeddings, parse_class_list, resolve_prompts

PROMPTS = {"anger": ["an angry face"], "disgust": ["a disgusted face"], "happiness": ["a smiling face"]}
FPS = 10.0


def texts(model: torch.nn.Module) -> tuple[torch.Tensor, list[str]]:
    """Class embeddings of PROMPTS and their labels, as `predict_videos` takes them."""
    return class_embeddings(model.encode_text, prompts=PROMPTS), list(PROMPTS)


def write_mp4(path: Path, frames: int, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    """A small random-noise mp4 (width a multiple of 32: decord needs aligned rows)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    model = build_model(ModelConfig(backbone="tiny", temporal=TemporalConfig(layers=1, heads=4)), seed=0).eval()
    ckpt = save_checkpoint(model, root / "tiny.pt")
    return {"root": root, "model": model, "ckpt": ckpt,
            "long": write_mp4(root / "long.mp4", 24, seed=1), "short": write_mp4(root / "short.mp4", 5, seed=2)}


def fake_detector(gray: np.ndarray, min_size: int) -> np.ndarray:
    h, w = gray.shape
    return np.array([[w // 4, h // 4, w // 2, h // 2]], dtype=np.float64)


def no_face(gray: np.ndarray, min_size: int) -> np.ndarray:
    return np.zeros((0, 4))


def window_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["window"].astype(str) != "video"]


def check_probabilities(table: pd.DataFrame) -> None:
    sums = table.groupby(["video", table["window"].astype(str)])["prob"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-4)
    for video, rows in table.groupby("video"):
        wins = window_rows(rows)
        mean = wins.groupby("class", sort=False)["prob"].mean()
        per_video = rows[rows["window"].astype(str) == "video"].set_index("class")["prob"]
        np.testing.assert_allclose(per_video[mean.index].to_numpy(), mean.to_numpy(), atol=1e-5)


def test_predict_videos_windows_and_probabilities(setup: dict) -> None:
    table = predict_videos([setup["long"], setup["short"]], setup["model"], *texts(setup["model"]), clip_len=4, downsample=2,
                           stride=2, full_frame=True, progress=False)
    assert list(table.columns) == ["video", "window", "start_frame", "start_s", "class", "prob"]
    long = window_rows(table[table["video"] == str(setup["long"])])
    # 24 frames, every 2nd kept -> 12 kept; windows of 4 kept frames every 2 -> firsts 0, 2, 4, 6, 8
    starts = long.drop_duplicates("window")["start_frame"].tolist()
    assert starts == [0, 4, 8, 12, 16]
    np.testing.assert_allclose(long.drop_duplicates("window")["start_s"], np.array(starts) / FPS)
    assert list(long["class"][:3]) == list(PROMPTS)
    short = window_rows(table[table["video"] == str(setup["short"])])
    assert short["window"].nunique() == 1 and short["start_frame"].iloc[0] == 0  # looped single window
    check_probabilities(table)
    assert table.attrs["videos"][str(setup["long"])] == {"num_frames": 24, "fps": FPS, "windows": 5}


def test_predict_videos_is_repeatable_and_matches_direct_encoding(setup: dict) -> None:
    model = setup["model"]
    kwargs = dict(clip_len=3, downsample=4, stride=None, full_frame=True, progress=False, scale=100.0)
    table = predict_videos([setup["long"]], model, *texts(model), **kwargs)
    again = predict_videos([setup["long"]], model, *texts(model), **kwargs)
    pd.testing.assert_frame_equal(table, again)
    # direct: frames 0, 4, 8 form window 0 (3 kept frames), encoded as one clip
    from emoclip_lib.data.preprocess import preprocess_frames
    from emoclip_lib.data.video import read_frames
    frames = preprocess_frames(read_frames(setup["long"], [0, 4, 8]), model.input_resolution)
    with torch.no_grad():
        v = torch.nn.functional.normalize(model.encode_video(frames.unsqueeze(0)), dim=-1)  # (1, D)
        t = class_text_embeddings(model.encode_text, PROMPTS)  # (3, D)
    expected = (100.0 * v @ t.t()).softmax(dim=1)[0].numpy()
    got = table[table["window"].astype(str) == "0"]["prob"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_compound_label_is_mean_of_components(setup: dict) -> None:
    model = setup["model"]
    emb = class_embeddings(model.encode_text, ["happiness", "anger+disgust"], prompts=PROMPTS)
    singles = class_text_embeddings(model.encode_text, PROMPTS)
    expected = torch.nn.functional.normalize(singles[0] + singles[1], dim=0)
    torch.testing.assert_close(emb[1], expected)
    torch.testing.assert_close(emb[0], singles[2])
    with pytest.raises(UserError, match="unknown class 'fear'.*known classes are anger, disgust, happiness"):
        class_embeddings(model.encode_text, ["anger+fear"], prompts=PROMPTS)


def test_face_cropping_uses_the_detector_and_names_faceless_videos(setup: dict) -> None:
    model = setup["model"]
    cropped = predict_videos([setup["long"]], model, *texts(model), clip_len=4, stride=None, detector=fake_detector,
                             progress=False)
    whole = predict_videos([setup["long"]], model, *texts(model), clip_len=4, stride=None, full_frame=True,
                           progress=False)
    check_probabilities(cropped)
    assert not np.allclose(cropped["prob"], whole["prob"])  # the face crop changes the input
    with pytest.raises(FaceNotFound, match="long.mp4"):
        predict_videos([setup["long"]], model, *texts(model), detector=no_face, progress=False)


def test_missing_and_corrupt_videos_are_named(setup: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothere.mp4 does not exist"):
        predict_videos([tmp_path / "nothere.mp4"], setup["model"], *texts(setup["model"]), progress=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="broken.mp4"):
        predict_videos([bad], setup["model"], *texts(setup["model"]), full_frame=True, progress=False)


def test_outputs_csv_json_png(setup: dict, tmp_path: Path) -> None:
    table = predict_videos([setup["long"], setup["short"]], setup["model"], *texts(setup["model"]), clip_len=4, stride=4,
                           full_frame=True, progress=False)
    back = pd.read_csv(write_predictions(table, tmp_path / "p.csv"))
    assert list(back.columns) == list(table.columns) and len(back) == len(table)
    np.testing.assert_allclose(back["prob"], table["prob"], rtol=1e-5)
    check_probabilities(back)
    data = json.loads(write_predictions(table, tmp_path / "p.json").read_text())
    assert data["classes"] == list(PROMPTS) and [v["video"] for v in data["videos"]] == [str(setup["long"]),
                                                                                          str(setup["short"])]
    first = data["videos"][0]
    assert [w["start_frame"] for w in first["windows"]] == [0, 8, 16]  # 12 kept frames, windows of 4
    assert first["prediction"] == max(first["probs"], key=first["probs"].get)
    np.testing.assert_allclose(sum(first["probs"].values()), 1.0, atol=1e-5)
    assert predictions_to_json(back)["videos"][1]["windows"][0]["start_s"] == 0.0  # from CSV too
    summary = video_summary(table)
    assert list(summary.index) == [str(setup["long"]), str(setup["short"])]
    assert summary.loc[str(setup["long"]), "prediction"] == first["prediction"]
    png = plot_timeline(table, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="use a .csv or .json"):
        write_predictions(table, tmp_path / "p.txt")


def test_class_lists_and_prompts(tmp_path: Path) -> None:
    assert parse_class_list(" Happiness, anger + Disgust ,") == ["happiness", "anger+disgust"]
    with pytest.raises(UserError, match="listed twice"):
        parse_class_list("anger,anger")
    prompts, labels = resolve_prompts(["happiness", "anger+disgust"], "description")
    assert labels == ["happiness", "anger+disgust"] and list(prompts) == ["happiness", "anger", "disgust"]
    assert all(len(texts) == 1 for texts in prompts.values())
    assert len(resolve_prompts(["anger"], "ensemble")[0]["anger"]) > 1
    assert resolve_prompts(["joy"], "name")[0] == {"joy": ["a person showing joy."]}
    with pytest.raises(UserError, match="unknown class 'joy'.*anger, disgust, fear"):
        resolve_prompts(["joy"], "description")
    yml = tmp_path / "mine.yaml"
    yml.write_text("classes:\n  awe:\n    name: awe\n    descriptions: [\"Wide eyes and a soft open mouth.\"]\n")
    assert resolve_prompts(None, "description", yml) == ({"awe": ["Wide eyes and a soft open mouth."]}, ["awe"])


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(["predict", *argv, "--no-progress", "--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_csv_json_and_plot(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = [str(setup["long"]), str(setup["short"]), "--checkpoint", str(setup["ckpt"]), "--full-frame",
              "--clip-len", "4", "--stride", "2", "--classes", "happiness,sadness,anger+disgust"]
    code, out, _ = run_cli([*common, "--out", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "t.png")], capsys)
    assert code == 0 and "long.mp4" in out and "prediction" in out
    table = pd.read_csv(tmp_path / "p.csv")
    assert set(table["class"]) == {"happiness", "sadness", "anger+disgust"}
    assert window_rows(table[table["video"] == str(setup["long"])])["window"].nunique() == 5
    check_probabilities(table)
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    code, _, _ = run_cli([*common, "--prompts", "name", "--out", str(tmp_path / "p.json")], capsys)
    data = json.loads((tmp_path / "p.json").read_text())
    assert code == 0 and data["classes"] == ["happiness", "sadness", "anger+disgust"]
    assert data["videos"][0]["num_frames"] == 24 and len(data["videos"][0]["windows"]) == 5


@pytest.mark.parametrize("case, pattern", [
    ("missing_ckpt", "checkpoint .*nope.pt does not exist"),
    ("missing_video", "ghost.mp4 does not exist"),
    ("corrupt_video", "cannot decode video .*broken.mp4"),
    ("no_face", "no face found in .*long.mp4.*--full-frame"),
    ("unknown_class", "unknown class 'joy'; known classes .*anger, disgust"),
    ("no_classes", "--classes"),
    ("bad_out", "--out .*p.txt: use a file name ending in .csv or .json"),
])
def test_cli_errors_are_one_line(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture, case: str,
                                 pattern: str) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 50)
    video, ckpt, extra = str(setup["long"]), str(setup["ckpt"]), ["--classes", "happiness,sadness"]
    if case == "missing_ckpt":
        ckpt = str(tmp_path / "nope.pt")
    elif case == "missing_video":
        video = str(tmp_path / "ghost.mp4")
    elif case == "corrupt_video":
        video, extra = str(tmp_path / "broken.mp4"), [*extra, "--full-frame"]
    elif case == "unknown_class":
        extra = ["--classes", "happiness,joy"]
    elif case == "no_classes":
        extra = []
    elif case == "bad_out":
        extra = [*extra, "--out", str(tmp_path / "p.txt")]
    code, _, err = run_cli([video, "--checkpoint", ckpt, *extra], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("emoclip predict: error: ")
    assert __import__("re").search(pattern, err), err


@pytest.mark.parametrize("case, pattern", [
    ("out_folder", r"--out .*outputs.csv is a folder"),
    ("plot_in_a_file", r"--plot .*plain/t.png cannot be created: .*plain is a file"),
    ("out_read_only", r"--out .*p.json cannot be created in .*Permission denied"),
    ("min_face", r"--min-face must be at least 1"),
])
def test_outputs_and_options_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch, case: str,
                                                         pattern: str) -> None:
    # neither the video nor the checkpoint exists: what is reported first must be the bad output or option
    (tmp_path / "outputs.csv").mkdir()
    (tmp_path / "plain").write_text("x")
    extra = {"out_folder": ["--out", str(tmp_path / "outputs.csv")],
             "plot_in_a_file": ["--plot", str(tmp_path / "plain" / "t.png")],
             "out_read_only": ["--out", str(tmp_path / "p.json")],
             "min_face": ["--min-face", "0"]}[case]
    if case == "out_read_only":
        real_open = __import__("os").open

        def read_only(path, flags, *args):
            if "write-check" in str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr("emoclip_lib.io_utils.os.open", read_only)
    code, _, err = run_cli([str(tmp_path / "ghost.mp4"), "--checkpoint", str(tmp_path / "nope.pt"),
                            "--classes", "happiness,sadness", *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("emoclip predict: error: ")
    assert __import__("re").search(pattern, err), err


def test_min_face_reaches_the_face_crop_and_the_no_face_advice_names_it(setup: dict, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from emoclip_lib.cli import predict as cli_predict

    seen = {}

    def no_face_found(paths, model, text_emb, labels, **kwargs):
        seen.update(kwargs)
        raise FaceNotFound(f"no face found in {paths[0]} (faces of at least {kwargs['crop'].min_size} px): "
                           f"lower the minimum face size")

    monkeypatch.setattr(cli_predict, "predict_videos", no_face_found)
    code, _, err = run_cli([str(setup["long"]), "--checkpoint", str(setup["ckpt"]), "--classes", "happiness,sadness",
                            "--min-face", "12"], capsys)
    assert code == 2 and seen["crop"].min_size == 12 and not seen["full_frame"]
    assert "at least 12 px" in err and "--min-face" in err and err.count("\n") == 1
    run_cli([str(setup["long"]), "--checkpoint", str(setup["ckpt"]), "--classes", "happiness,sadness"], capsys)
    assert seen["crop"].min_size == 40  # the default of FaceCrop


def test_a_single_class_warns_that_every_probability_is_one(setup: dict, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    argv = [str(setup["short"]), "--checkpoint", str(setup["ckpt"]), "--full-frame", "--clip-len", "4"]
    code, _, err = run_cli([*argv, "--classes", "happiness", "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 0 and "warning: only one class (happiness)" in err and "two or more classes" in err
    assert (pd.read_csv(tmp_path / "p.csv")["prob"] == 1.0).all()
    code, _, err = run_cli([*argv, "--classes", "happiness,sadness"], capsys)
    assert code == 0 and "warning" not in err


def test_native_decoder_messages_are_silenced_by_the_shared_helper(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture) -> None:
    from emoclip_lib.cli import predict as cli_predict
    from emoclip_lib.data import quiet_native_stderr

    assert not hasattr(cli_predict, "_quiet_native_stderr")  # one helper, in emoclip_lib.data.video
    assert cli_predict.quiet_native_stderr is quiet_native_stderr
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage" * 50)
    with pytest.raises(DataError, match="broken.mp4"):
        cli_predict.probe_videos([str(bad)])
    assert capfd.readouterr().err == ""

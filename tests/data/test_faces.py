"""Tests of face detection, tracking and square cropping (emoclip_lib.data.faces)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emoclip_lib.data import faces
from emoclip_lib.errors import UserError
from conftest import BACKGROUND, SKIN, draw_face



def as_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)


def test_haar_cascade_finds_the_drawn_face_where_it_is():
    frames = as_tensor([draw_face(200, 240, 140, 110), draw_face(200, 240, 70, 90, scale=0.6)])
    boxes = faces.largest_faces(frames, faces.haar_detector(), min_size=24)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    np.testing.assert_allclose(centres, [[140, 110], [70, 90]], atol=6)
    assert 100 <= boxes[0, 2] <= 160 and 50 <= boxes[1, 2] <= 100  # box side follows the face size


def test_crop_faces_centres_the_face_and_follows_it():
    frames = as_tensor([draw_face(240, 280, 110 + 6 * t, 120) for t in range(8)])
    out = faces.crop_faces(frames, margin=0.25, min_size=24, every=2, size=48, smooth=3)
    assert out.shape == (8, 3, 48, 48) and out.dtype == torch.uint8
    centre = out[:, :, 20:28, 20:28].float().mean(dim=(2, 3))  # (T, 3): the nose area is skin-coloured
    assert (centre - torch.tensor(SKIN, dtype=torch.float32)).abs().max() < 40
    corners = out[:, :, :3, :3].float().mean(dim=(2, 3))  # margin around the face shows the background
    assert (corners - torch.tensor(BACKGROUND, dtype=torch.float32)).abs().max() < 40
    skin = (out.float() - torch.tensor(SKIN, dtype=torch.float32).view(1, 3, 1, 1)).abs().amax(dim=1) < 40
    columns = torch.arange(48, dtype=torch.float32)
    centroid = (skin.float() * columns).sum(dim=(1, 2)) / skin.float().sum(dim=(1, 2))  # (T,)
    # the face moves 42 px (about 10 px of the 48-px crop); smoothing and holding after the last
    # detection (frame 6) may lag by a few pixels at the end, a crop that stayed put would not follow
    assert (centroid - 23.5).abs().max() < 4 and (centroid[:6] - 23.5).abs().max() < 2


def test_no_face_on_noise_or_blank_raises_naming_the_video():
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 3, 96, 128), dtype=np.uint8))
    with pytest.raises(faces.FaceNotFound, match="interview_07.mp4"):
        faces.crop_faces(noise, min_size=24, every=1, name="interview_07.mp4")
    blank = torch.full((4, 3, 96, 128), 128, dtype=torch.uint8)
    with pytest.raises(UserError, match="no face found"):
        faces.crop_faces(blank, min_size=24, every=2)


def test_full_frame_fallback_is_the_centre_square():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 40, 60), dtype=np.uint8))
    out = faces.crop_faces(frames, full_frame=True, size=40, every=1, detector=lambda g, m: np.zeros((0, 4)))
    torch.testing.assert_close(out, frames[:, :, :, 10:50])


def index_detector(boxes_by_frame: dict[int, list[tuple[float, float, float, float]]], seen: list[int]):
    """A fake detector: frame i has i + 1 bright pixels in row 0; returns the boxes listed for i."""
    def detect(gray: np.ndarray, min_size: int) -> np.ndarray:
        index = int((gray[0] > 0).sum()) - 1
        seen.append(index)
        return np.asarray(boxes_by_frame.get(index, []), dtype=np.float64).reshape(-1, 4)
    return detect


def indexed_frames(count: int, height: int = 100, width: int = 120) -> torch.Tensor:
    frames = torch.zeros((count, 3, height, width), dtype=torch.uint8)
    for i in range(count):
        frames[i, :, 0, : i + 1] = 200  # survives the histogram equalisation before detection
    return frames


def test_median_smoothing_removes_an_outlier_and_a_miss():
    seen: list[int] = []
    steady = (30.0, 20.0, 40.0, 40.0)
    boxes = {i: [steady] for i in range(9)}
    boxes[4] = [(80.0, 60.0, 10.0, 10.0)]  # one misdetection
    boxes[6] = []  # one miss
    frames = indexed_frames(9)
    out = faces.crop_faces(frames, margin=0.0, every=1, size=40, smooth=5, detector=index_detector(boxes, seen))
    assert seen == sorted(seen) and len(seen) == 9
    torch.testing.assert_close(out, frames[:, :, 20:60, 30:70])  # every frame cropped at the steady box


def test_detection_runs_on_every_kth_frame_only():
    seen: list[int] = []
    frames = indexed_frames(10)
    faces.crop_faces(frames, every=4, size=16, detector=index_detector({}, seen), full_frame=True)
    assert seen == [0, 4, 8]


def test_largest_face_wins_and_large_frames_are_shrunk_for_detection():
    shapes: list[tuple[int, int]] = []
    sizes: list[int] = []

    def detect(gray: np.ndarray, min_size: int) -> np.ndarray:
        shapes.append(gray.shape)
        sizes.append(min_size)
        return np.array([[5, 5, 10, 10], [20, 10, 30, 20], [0, 0, 12, 12]], dtype=np.float64)

    frames = torch.zeros((1, 3, 200, 400), dtype=torch.uint8)
    boxes = faces.largest_faces(frames, detect, min_size=40, max_side=100)
    assert shapes == [(50, 100)] and sizes == [10]
    np.testing.assert_allclose(boxes, [[80, 40, 120, 80]])  # the 30x20 box, scaled back by 4


def test_smooth_track_interpolates_and_holds_the_ends():
    idx = np.array([2, 6, 10])
    boxes = np.array([[0, 0, 10, 10], [np.nan] * 4, [8, 4, 10, 10]], dtype=np.float64)
    track = faces.smooth_track(idx, boxes, num_frames=12, window=1)
    np.testing.assert_allclose(track[[0, 2, 6, 10, 11], 0], [0, 0, 4, 8, 8])
    np.testing.assert_allclose(track[6], [4, 2, 10, 10])
    assert faces.smooth_track(idx, np.full((3, 4), np.nan), 12, 3) is None


def test_square_boxes_and_crop_with_padding():
    squares = faces.square_boxes(np.array([[10.0, 20.0, 16.0, 12.0]]), margin=0.25)
    np.testing.assert_array_equal(squares, [[6, 14, 24]])  # side 16 * 1.5, same centre (18, 26)
    frame = torch.arange(3 * 40 * 50, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 3, 40, 50)
    torch.testing.assert_close(faces.crop_squares(frame, squares, 24), frame[:, :, 14:38, 6:30])
    corner = faces.crop_squares(frame, np.array([[-4, -6, 16]]), 16)
    assert corner[:, :, :6].eq(0).all() and corner[:, :, :, :4].eq(0).all()
    torch.testing.assert_close(corner[:, :, 6:, 4:], frame[:, :, :10, :12])
    resized = faces.crop_squares(frame, np.array([[0, 0, 40]]), 20)
    assert resized.shape == (1, 3, 20, 20)


def test_bad_settings_and_inputs_are_user_errors():
    with pytest.raises(UserError, match="face-crop settings"):
        faces.FaceCrop(every=0)
    with pytest.raises(UserError, match="uint8"):
        faces.crop_faces(torch.zeros((2, 3, 8, 8)))

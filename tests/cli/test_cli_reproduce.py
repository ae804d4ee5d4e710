"""`emoclip reproduce` ends by printing the paper-layout table of the run's notebook 04."""
from __future__ import annotations

import json
from pathlib import Path

from emoclip_lib import cli
from emoclip_lib.cli import reproduce as cli_reproduce
from emoclip_lib.pipeline import summary_text


def _summary(uar: float, war: float, std: float = 0.0) -> dict:
    return {"uar": {"mean": uar, "std": std}, "war": {"mean": war, "std": std}}


RESULTS = {
    "protocol": {"clip_len": 32, "downsample": 4, "window": "centre"}, "seeds": [0, 1],
    "datasets": {
        "MAFW": {"kind": "within", "summary": {"emoclip": _summary(0.2586, 0.3349, 0.012),
                                                "clip_names": _summary(0.1339, 0.1548)}},
        "DFEW": {"kind": "cross", "summary": {"emoclip": _summary(0.3676, 0.4627, 0.05),
                                               "clip_names": _summary(0.2208, 0.2130)}},
    },
}


def test_summary_text_is_the_paper_layout_with_spreads() -> None:
    text = summary_text(RESULTS)
    lines = text.splitlines()
    assert "32 frames, one in 4, centre window" in lines[0] and "seeds [0, 1]" in lines[0]
    assert lines[1].index("DFEW (cross)") < lines[1].index("MAFW (within)")  # the paper's column order
    emoclip = next(line for line in lines if line.startswith("EmoCLIP"))
    assert "36.8 ± 5.0 / 46.3 ± 5.0" in emoclip and "25.9 ± 1.2 / 33.5 ± 1.2" in emoclip
    assert any(line.startswith("CLIP frame-avg (class names)") and "13.4 ± 0.0" in line for line in lines)
    assert summary_text({"datasets": {}}) == "zero-shot: no dataset was scored"


def test_reproduce_prints_the_table_when_notebook_04_ran(tmp_path: Path, monkeypatch, capsys) -> None:
    def fake(profile, out, overrides, force=False, progress=True):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "04_results.json").write_text(json.dumps(RESULTS))
        return Path(out)

    monkeypatch.setattr(cli_reproduce, "reproduce", fake)
    assert cli.main(["reproduce", "--profile", "synthetic", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "EmoCLIP (descriptions)" in out and "36.8 ± 5.0" in out and out.rstrip().endswith(str(tmp_path / "run"))


def test_reproduce_without_notebook_04_prints_only_where_the_run_is(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli_reproduce, "reproduce", lambda profile, out, *a, **k: Path(out))
    assert cli.main(["reproduce", "--profile", "synthetic", "--out", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"run finished: {tmp_path}"

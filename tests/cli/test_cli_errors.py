"""`emoclip` itself (`cli.main`): file-system errors and Ctrl-C end in one line; `emoclip manifest` checks
its --out before converting anything."""
from __future__ import annotations

import pytest

from emoclip_lib import cli
from emoclip_lib.cli import data as cli_data


def run(capsys, argv: list[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_an_os_error_escaping_a_command_is_one_line_naming_the_path(monkeypatch, capsys, tmp_path):
    def fails(args):
        open(tmp_path / "nowhere" / "file.csv", encoding="utf-8")  # FileNotFoundError

    monkeypatch.setattr(cli_data, "run_validate", fails)
    code, err = run(capsys, ["validate", "m.csv", "--root", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("emoclip validate: error: ") and str(tmp_path / "nowhere" / "file.csv") in err
    assert "No such file or directory" in err


def test_an_os_error_without_a_path_is_one_line_too(monkeypatch, capsys, tmp_path):
    def fails(args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_data, "run_validate", fails)
    code, err = run(capsys, ["validate", "m.csv", "--root", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_data, "run_validate", interrupted)
    try:
        code, err = run(capsys, ["validate", "m.csv", "--root", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped emoclip's main")
    assert code == 130
    assert err == "emoclip validate: interrupted; run the same command again to resume\n"


@pytest.mark.parametrize("case", ["folder", "file_in_the_way"])
def test_manifest_out_is_checked_before_converting(capsys, tmp_path, case):
    (tmp_path / "plain").write_text("x")
    out = tmp_path if case == "folder" else tmp_path / "plain" / "m.csv"
    code, err = run(capsys, ["manifest", "mafw", "--root", str(tmp_path / "no_release"), "--out", str(out)])
    assert code == 2 and err.count("\n") == 1 and err.startswith("emoclip manifest: error: --out ")
    assert ("is a folder" if case == "folder" else "plain is a file") in err

"""`mmbot report --sweep`: the page of a real sweep (a 2x2 grid on a seeded mock market, `--out DIR`),
with the plot embedded, the table with the best trial marked and the best keys as TOML; and the inputs
it refuses, each with one line."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    grid = ["--grid", "quoter.gamma_per_quote=0.1,0.2", "--grid", "quoter.order_size_base=0.5,1.0"]
    assert main(["sweep", "mock:1", "--minutes", "1", *grid, "--out", str(out)]) == 0
    return out


def test_the_sweep_page_shows_the_plot_the_table_and_the_best_toml(
    sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["report", "--sweep", str(sweep_dir), "--out", str(tmp_path)]) == 0
    index = Path(capsys.readouterr().out.strip())
    assert index == tmp_path / "sweep.html"
    page = index.read_text()
    payload = json.loads((sweep_dir / "sweep.json").read_text())
    embedded = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", page).group(1))  # type: ignore[union-attr]
    assert embedded.startswith(b"\x89PNG") and embedded == (tmp_path / "sweep.png").read_bytes()
    table = re.search(r"<h2>Trials</h2><pre>(.*?)</pre>", page, re.S).group(1).splitlines()  # type: ignore[union-attr]
    assert len(table) == 1 + len(payload["trials"]) == 5  # the header, then one row per trial
    best = next(i for i, t in enumerate(payload["trials"]) if t["params"] == payload["best"]["params"])
    assert [row.split()[0] for row in table[1:]] == [f"{i}*" if i == best else str(i) for i in range(4)]
    toml = re.search(r"<h2>Best by pnl</h2><pre>(.*?)</pre>", page, re.S).group(1)  # type: ignore[union-attr]
    assert tomllib.loads(toml)["quoter"] == {k.split(".")[1]: v for k, v in payload["best"]["params"].items()}


def test_the_json_file_itself_works_too(sweep_dir: Path, tmp_path: Path) -> None:
    assert main(["report", "--sweep", str(sweep_dir / "sweep.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sweep.html").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read"),
        (b"{not json", "not JSON"),
        (b'{"trials": [], "best": {}}', "not a sweep's result"),
        (b"[1, 2]", "not a sweep's result"),
    ],
)
def test_what_is_not_a_sweep_is_one_line_and_exit_1(
    content: bytes | None, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sweep.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["report", "--sweep", str(path), "--out", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written for a bad input

"""`liftboard build` with its output going to a pipe (a log, CI): a progress line per stage and step, as
they happen; and what `liftboard serve` prints before the server's own output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from core.config import Settings
from datastore.db import dispose_engine, upgrade_db
from datastore.snapshots import latest_build_id
from liftboard.build import _MatchingProcess, _Stages
from liftboard.cli import _ProgressLines, _sign_in_hint
from tests.test_build import _copy_home, tiny_home  # noqa: F401 - the shared tiny marketplace fixture

LINE = re.compile(r"^\s*(?P<clock>\d+\.\d)s \[(?P<done>\d+)/(?P<total>\d+)\] (?P<text>.+)$")


def _liftboard() -> list[str]:
    script = Path(sys.executable).with_name("liftboard")
    return (
        [str(script)] if script.exists() else [sys.executable, "-c", "from liftboard.cli import app; app()"]
    )


def test_build_to_a_pipe_prints_a_line_per_stage_as_it_goes(tiny_home: Path, tmp_path: Path) -> None:  # noqa: F811
    settings = _copy_home(tiny_home, tmp_path / "home")
    environment = {**os.environ, "LIFTBOARD_HOME": str(settings.home), "COLUMNS": "200"}
    environment.pop("LIFTBOARD_DATABASE_URL", None)
    errors = tmp_path / "stderr.txt"
    lines: list[str] = []
    running_at_first_line = None
    with (
        open(errors, "w", encoding="utf-8") as stderr,
        subprocess.Popen(
            [*_liftboard(), "build"], stdout=subprocess.PIPE, stderr=stderr, env=environment, text=True
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            if running_at_first_line is None:
                running_at_first_line = process.poll() is None
            lines.append(line.rstrip("\n"))
    assert process.returncode == 0, errors.read_text()
    # the first line reached the pipe while the build was still running: lines are flushed as they come
    assert running_at_first_line

    progress = [match for line in lines if (match := LINE.match(line))]
    build_id = latest_build_id(settings)
    assert build_id is not None
    manifest = json.loads((settings.snapshots / build_id / "manifest.json").read_text())
    stages = list(manifest["timings"])
    assert {"strategies", "matching", "product pairs", "SQL tables"} <= set(stages)
    totals = {int(match["total"]) for match in progress}
    assert totals == {len(stages)}
    texts = [match["text"] for match in progress]
    for stage in stages:
        assert any(text == stage or text.startswith(f"{stage} (") for text in texts), stage
        done = [text for text in texts if re.fullmatch(rf"{re.escape(stage)} done in \d+\.\ds.*", text)]
        assert len(done) == 1, (stage, texts)
    # the long stages report their steps, numbered, as each finishes
    for stage, expected_steps in (("strategies", 7), ("matching", 9)):
        steps = [text for text in texts if re.match(rf"{stage} \d+/{expected_steps}: ", text)]
        assert len(steps) == expected_steps, (stage, steps)
    assert any(
        re.match(r"matching \d+/9: training window 1/5 \(as of [\d-]+\): [\d,]+ candidate", t) for t in texts
    )
    clocks = [float(match["clock"]) for match in progress]
    assert clocks == sorted(clocks)
    assert progress[-1]["done"] == progress[-1]["total"]
    assert re.search(r"published to .+ in \d+\.\ds \(dimensions", "\n".join(lines))
    dispose_engine(settings)


def test_a_failure_in_the_matching_process_is_raised_with_its_traceback(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "home")  # no lake: no candidates to train on
    events: list[str] = []
    stages = _Stages(lambda description, _done, _total: events.append(description), 3, {})
    matching = _MatchingProcess(settings, date(2026, 11, 23), tmp_path, stages)
    matching.start()
    with pytest.raises(RuntimeError, match=r"(?s)matching stage failed:.*Traceback.*LightGBMError"):
        matching.result()
    assert events[0] == "matching (in its own process, beside the next stages)"
    assert events[1].startswith("matching 1/9: training window 1/5 (as of 2026-09-28): 0 candidate pairs")
    assert matching.process.exitcode == 1


def test_progress_lines_thin_out_repeats_of_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 0.1, 0.2, 0.3, 2.5, 2.6, 2.7])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    lines = _ProgressLines(every=2.0)  # started at 0.0
    printed = [
        lines.line("simulate", 1, 4),
        lines.line("simulate", 2, 4),  # a repeat 0.1 s later: not printed
        lines.line("ingest", 0, 1),  # another step: printed
        lines.line("ingest", 0, 1),  # a repeat 2.2 s after the last "ingest" line: printed
        lines.line("ingest", 0, 1),
        lines.line("ingest", 1, 1),  # the last step: always printed
    ]
    assert printed == [
        "    0.1s [1/4] simulate",
        None,
        "    0.3s [0/1] ingest",
        "    2.5s [0/1] ingest",
        None,
        "    2.7s [1/1] ingest",
    ]


def test_serve_says_how_to_make_a_user_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(home=tmp_path / "home")
    monkeypatch.setenv("LIFTBOARD_HOME", str(settings.home))
    assert "liftboard db upgrade" in _sign_in_hint()
    upgrade_db(settings)
    hint = _sign_in_hint()
    assert "liftboard users add NAME --role ops" in hint
    assert "liftboard users seed-demo" in hint
    dispose_engine(settings)


def test_the_matching_process_never_reruns_the_parents_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawned child re-imports the parent's ``__main__`` script; in a test worker that ran the app
    (AppTest), that script is ``app.py``. While the matching process starts, no script is handed over."""
    import multiprocessing.spawn
    import sys
    import types

    from liftboard.build import main_script_hidden

    script = tmp_path / "app_like.py"
    script.write_text("raise SystemExit('must not run in the child')\n", encoding="utf-8")
    parent_main = types.ModuleType("__main__")
    parent_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", parent_main)
    assert multiprocessing.spawn.get_preparation_data("x").get("init_main_from_path") == str(script)
    with main_script_hidden():
        data = multiprocessing.spawn.get_preparation_data("x")
    assert "init_main_from_path" not in data
    assert "init_main_from_name" not in data
    assert sys.modules["__main__"] is parent_main

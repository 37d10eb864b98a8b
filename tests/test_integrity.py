"""Integrity of the results: a run's metrics.json that is deleted is remade, one that is bad (garbage, cut short,
another run's) is named, set aside and remade, and the tables never crash on a bad file: they name it."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from coop.metrics_check import BadRecordError, file_problem, read_record, record_problem, set_aside_bad
from test_data_change import assert_same_results, planned, run
from workflow_util import TINY

RUN = "results/runs/toy_textures/toy-rn/zeroshot/default/shots0/seed0/metrics.json"
IDENTITY = {"dataset": "toy_textures", "backbone": "toy-rn", "method": "zeroshot", "variant": "default", "shots": 0,
            "seed": 0}
GOOD = {**IDENTITY, "model": "toy-rn", "accuracy": 41.25, "macro_f1": 38.5, "n_test": 40, "n_classes": 8,
        "params": {}, "wall_seconds": 3.2, "job_seconds": 3.2}
BAD = {
    "garbage": (b"garbage\n", "not valid JSON"),
    "empty": (b"", "empty"),
    "cut short": (json.dumps(GOOD).encode()[:40], "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00", "not UTF-8"),
    "a list": (b"[1, 2]", "not a JSON object but a JSON list"),
    "a key missing": (json.dumps({k: v for k, v in GOOD.items() if k != "macro_f1"}).encode(), "lacks macro_f1"),
    "NaN accuracy": (json.dumps({**GOOD, "accuracy": float("nan")}).encode(), "accuracy is NaN, not a finite number"),
    "a string for a number": (json.dumps({**GOOD, "n_test": "40"}).encode(), 'n_test is "40", not a JSON integer'),
    "not a percentage": (json.dumps({**GOOD, "accuracy": 4125}).encode(), "accuracy is 4125, not a percentage"),
    "another run's": (json.dumps({**GOOD, "seed": 3}).encode(), "another run (seed 3, this run's is 0)"),
}


def test_a_good_record_passes():
    assert record_problem(GOOD, IDENTITY) is None
    assert record_problem({**GOOD, "accuracy": 40}, IDENTITY) is None  # an int is a number


@pytest.mark.badinput
@pytest.mark.parametrize("what", BAD)
def test_a_bad_metrics_json_is_named_and_set_aside(tmp_path, what):
    content, problem = BAD[what]
    bad, good = tmp_path / "bad" / "metrics.json", tmp_path / "good" / "metrics.json"
    for path, data in ((bad, content), (good, json.dumps(GOOD).encode())):
        path.parent.mkdir()
        path.write_bytes(data)
    assert problem in file_problem(bad, IDENTITY)
    with pytest.raises(BadRecordError) as e:
        read_record(bad, IDENTITY)
    message = str(e.value)
    assert message.startswith(f"{bad}: ") and problem in message and "done again" in message and "\n" not in message
    moved = set_aside_bad({str(bad): IDENTITY, str(good): IDENTITY, str(tmp_path / "missing.json"): IDENTITY})
    assert [(p, a) for p, _, a in moved] == [(str(bad), bad.with_name("metrics.json.bad"))]
    assert problem in moved[0][1]
    assert not bad.exists() and bad.with_name("metrics.json.bad").read_bytes() == content  # kept, for a look
    assert json.loads(good.read_text()) == GOOD  # a good one is left alone


@pytest.mark.badinput
@pytest.mark.parametrize("command", ["runs", "table"])
def test_a_table_job_names_the_bad_file_in_one_line_and_writes_nothing(tmp_path, coop_bin, command):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(GOOD))
    bad.write_text("garbage")
    out = tmp_path / "table.csv"
    proc = subprocess.run([coop_bin, "report", command, "--out", str(out), str(good), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {bad}: not valid JSON (Expecting value: line 1 column 1 (char 0)); its run is done "
                     f"again by the next workflow run (which moves a bad metrics.json aside as metrics.json.bad)."]
    assert not out.exists() and "Traceback" not in proc.stderr


def _copy(tiny_run: Path, work: Path) -> Path:
    shutil.copytree(tiny_run, work, symlinks=True)
    return work


def _files(work: Path) -> dict[str, tuple[int, bytes]]:
    """Every result but the logs and benchmarks: (mtime, bytes)."""
    return {str(p.relative_to(work)): (p.stat().st_mtime_ns, p.read_bytes())
            for top in ("results", "figures", "data") for p in sorted((work / top).rglob("*"))
            if p.is_file() and not {"logs", "benchmarks"} & set(p.relative_to(work).parts)}


# what a run's redo rewrites: the run's own folder, the tables and figures made from every run
REDONE = {RUN, "results/tables/runs.csv", "results/tables/fewshot.csv", "figures/fig3_fewshot.png",
          "figures/fig3_fewshot.pdf", "figures/fig4_gain_over_zeroshot.png", "figures/fig4_gain_over_zeroshot.pdf",
          "results/tables/findings.csv", "results/tables/findings.md"}
REDO_JOBS = {RUN, "results/tables/runs.csv", "results/tables/fewshot.csv",
             "results/tables/findings.csv, results/tables/findings.md",
             "figures/fig3_fewshot.pdf, figures/fig3_fewshot.png",
             "figures/fig4_gain_over_zeroshot.pdf, figures/fig4_gain_over_zeroshot.png"}


def _assert_only_the_run_and_its_tables_redone(work: Path, before: dict, tiny_run: Path) -> None:
    after = _files(work)
    unchanged = {f for f in before if f not in REDONE and not f.endswith(".bad")}
    assert {f: after.get(f) for f in unchanged} == {f: before[f] for f in unchanged}
    assert json.loads((work / RUN).read_text())["accuracy"] == json.loads((tiny_run / RUN).read_text())["accuracy"]
    assert_same_results(work, tiny_run)


@pytest.mark.resume
def test_a_deleted_metrics_json_is_remade_with_only_the_tables_that_read_it(tiny_run, tmp_path):
    work = _copy(tiny_run, tmp_path / "work")
    (work / RUN).unlink()
    before = _files(work)
    assert planned(work, TINY) == REDO_JOBS  # was "Nothing to be done"
    run(work, TINY)
    _assert_only_the_run_and_its_tables_redone(work, before, tiny_run)


@pytest.mark.resume
def test_a_garbage_metrics_json_is_named_set_aside_and_remade(tiny_run, tmp_path):
    work = _copy(tiny_run, tmp_path / "work")
    (work / RUN).write_text("garbage")
    before = _files(work)
    proc_out = run(work, TINY, "-n")  # found by the check of its own, at the dry run already
    assert (f"note: {RUN}: not valid JSON (Expecting value: line 1 column 1 (char 0)); moved it to "
            f"metrics.json.bad beside it, and its run is done again") in proc_out
    assert (work / RUN).with_name("metrics.json.bad").read_text() == "garbage" and not (work / RUN).exists()
    assert planned(work, TINY) == REDO_JOBS
    run(work, TINY)
    _assert_only_the_run_and_its_tables_redone(work, before, tiny_run)

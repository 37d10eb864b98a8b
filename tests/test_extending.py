"""The README's "Extending" section, run as written: a method of the user's own (a plugin module outside coop/),
a dataset by config alone, a backbone by its own model-config JSON and a table of the user's own, through the
tiny workflow to fewshot.csv, a figure, transfer and the table. The files are taken from the README's code
blocks (each follows a `<!-- file: PATH -->` line), so the documentation is what is tested."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_util import ROOT, TINY, snakemake

pytestmark = pytest.mark.e2e


def readme_files() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- file: (\S+) -->\s*```\w*\n(.*?)```", text, flags=re.S)
    return {name: body for name, body in blocks}


def write_readme_files(folder: Path) -> dict[str, Path]:
    out = {}
    for name, body in readme_files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        out[name] = path
    return out


def make_colour_dataset(folder: Path, n: dict[str, int]) -> None:
    """An image-folder dataset of three colours (noisy 32-px patches): <folder>/{train,val,test}/<class>/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 50, 200)}
    for part, count in n.items():
        for name, rgb in colours.items():
            d = folder / part / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"{name}_{i}.png")


def test_readme_has_a_worked_example_of_each_kind():
    names = set(readme_files())
    assert {"ext/learned_temperature.py", "ext/accuracy_by_label.py", "ext/my-rn.json", "ext/config.yaml"} <= names


@pytest.fixture(scope="module")
def extended_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("extending")
    files = write_readme_files(work)
    make_colour_dataset(work / "data" / "my_colours", {"train": 4, "val": 2, "test": 5})
    extension = yaml.safe_load(files["ext/config.yaml"].read_text())
    config = {**TINY, **extension}
    config["methods"] = {**TINY["methods"], **extension.get("methods", {})}
    config["backbones"] = {**TINY["backbones"], **extension.get("backbones", {})}
    proc = snakemake(work, "--cores", "2", config=config)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, config


def _runs(work):
    return pd.read_csv(work / "results" / "tables" / "runs.csv")


def test_plugin_method_runs_through_the_workflow(extended_run):
    work, config = extended_run
    runs = _runs(work)
    zs = runs[runs["method"] == "zeroshot"].set_index(["dataset", "backbone"])["accuracy"]
    everywhere = runs[runs["method"] == "learned_temperature"]
    # a temperature does not change the argmax: every run's accuracy is zero-shot's (an independent fact)
    for _, r in everywhere.iterrows():
        assert r["accuracy"] == zs[(r["dataset"], r["backbone"])]
    mine = everywhere[everywhere["backbone"] == "toy-rn"]  # the fewshot experiment's runs
    assert set(mine["shots"]) == {1, 2} and set(mine["seed"]) == set(TINY["seeds"])
    assert set(mine["dataset"]) == set(config["experiments"]["fewshot"]["datasets"])
    for metrics in (work / "results" / "runs").glob("*/*/learned_temperature/*/*/*/metrics.json"):
        m = json.loads(metrics.read_text())
        assert m["temperature"] > 0 and m["temperature"] != 1.0
    table = pd.read_csv(work / "results" / "tables" / "fewshot.csv")
    assert len(table[(table["method"] == "learned_temperature") & (table["backbone"] == "toy-rn")]) == 2 * 2
    assert (work / "figures" / "fig3_fewshot.png").stat().st_size > 10_000


def test_plugin_method_transfers(extended_run):
    work, _ = extended_run
    transfer = pd.read_csv(work / "results" / "tables" / "transfer.csv")
    mine = transfer[transfer["method"] == "learned_temperature"]
    zs = transfer[transfer["method"] == "zeroshot"].set_index("target")["accuracy"]
    assert len(mine) > 0
    for _, r in mine.iterrows():
        assert r["accuracy"] == zs[r["target"]]


def test_config_dataset_is_read_as_written(extended_run):
    work, _ = extended_run
    runs = _runs(work)
    colours = runs[runs["dataset"] == "my_colours"]
    assert set(colours["n_test"]) == {15}  # 3 classes x 5 test images, as written by make_colour_dataset
    manifest = json.loads((work / "results" / "fewshot" / "my_colours" / "shots2_seed1.json").read_text())
    assert len(manifest["train"]) == 3 * 2


def test_nothing_of_the_plugin_lives_in_the_package(extended_run):
    work, _ = extended_run
    out = subprocess.run([sys.executable, "-c", "import coop.methods.registry as r; "
                          "print('learned_temperature' in r.all_methods())"], capture_output=True, text=True)
    assert out.stdout.strip() == "False"  # not built in: only the config's plugins: line brings it
    assert not list((ROOT / "coop").rglob("learned_temperature*"))


def test_plugin_table_is_built_from_the_runs(extended_run):
    work, config = extended_run
    table = pd.read_csv(work / "results" / "tables" / "accuracy_by_label.csv")
    runs = _runs(work)
    mine = runs[(runs["method"] == "learned_temperature") & (runs["backbone"] == "toy-rn")]
    assert set(table["backbone"]) == {"toy-rn"}  # the fewshot experiment's backbones only
    for (dataset, shots), group in mine.groupby(["dataset", "shots"]):
        row = table[(table["dataset"] == dataset) & (table["label"] == "learned_temperature")
                    & (table["shots"] == shots)]
        acc = list(group["accuracy"])
        assert len(row) == 1 and row["n_seeds"].item() == len(acc) == len(TINY["seeds"])
        assert abs(row["acc_mean"].item() - sum(acc) / len(acc)) < 0.006
    md = (work / "results" / "tables" / "accuracy_by_label.md").read_text()
    assert "Accuracy of every run label by shots" in md


def test_config_backbone_runs_with_its_own_preprocessing(extended_run):
    work, _ = extended_run
    runs = _runs(work)
    mine = runs[runs["backbone"] == "my-rn"]
    assert set(mine["method"]) == {"zeroshot", "learned_temperature"} and set(mine["dataset"]) == {"my_colours"}
    m = json.loads((work / "results/runs/my_colours/my-rn/zeroshot/default/shots0/seed0/metrics.json").read_text())
    assert m["model"] == "ext/my-rn.json" and m["pretrained"] == "random"
    from coop.models import load_clip

    clip = load_clip(str(work / "ext" / "my-rn.json"), "random")
    assert clip.model.text_projection.shape[-1] == 96  # the JSON's embed_dim
    assert tuple(clip.preprocess.mean) == (0.5, 0.5, 0.5) and tuple(clip.preprocess.std) == (0.25, 0.25, 0.25)
    from safetensors.numpy import load_file

    cached = load_file(str(work / "results/features/my_colours/my-rn/test.safetensors"))
    assert any(t.ndim == 2 and t.shape == (15, 96) for t in cached.values())  # 15 test images x embed_dim


BAD = {
    "plugin that does not import": ({"plugins": ["no_such_plugin_xyz"]},
                                    "plugin 'no_such_plugin_xyz' does not import"),
    "plugin clashing with a built-in": ({"plugins": ["ext/clash.py"]},
                                        "'coop' is already taken by a built-in method"),
    "plugin lacking a declaration": ({"plugins": ["ext/incomplete.py"]},
                                     "incomplete.py' failed while importing: TypeError"),
    "dataset with a missing folder": ({"datasets": {"gone": {"folder": "nowhere", "layout": "image_folder",
                                                             "template": "a {}."}}}, "datasets.gone"),
    "dataset with a missing split file": ({"datasets": {"nosplit": {"folder": "here", "layout": "split_json",
                                                                    "split_file": "absent.json",
                                                                    "template": "a {}."}}}, "absent.json"),
    "model config that open_clip rejects": ({"backbones": {"bad": {"model": "ext/bad.json",
                                                                   "pretrained": "random"}}}, "embed_dim"),
    "variant parameter out of range": ({"methods": {"coop": {"end_m4": {"n_ctx": 0}}}},
                                       "methods.coop.end_m4: n_ctx must be >= 1"),
}


@pytest.mark.badinput
@pytest.mark.parametrize("case", list(BAD))
def test_bad_extensions_stop_before_any_job(case, tmp_path):
    change, message = BAD[case]
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "clash.py").write_text("from dataclasses import dataclass\nfrom coop.methods import Method, register\n"
                                  "@dataclass\nclass C:\n    a: int = 0\n"
                                  "register(Method(name='coop', config=C, train=lambda c, g: [], few_shot=True, "
                                  "needs_images=False, description='x', display_name='X'))\n")
    (ext / "incomplete.py").write_text("from coop.methods import Method, register\nregister(Method(name='m'))\n")
    (ext / "bad.json").write_text(json.dumps({"vision_cfg": {"image_size": 32}, "text_cfg": {}}))
    (tmp_path / "data" / "here").mkdir(parents=True)
    finished = tmp_path / "results" / "tables" / "runs.csv"  # a result of an earlier run
    finished.parent.mkdir(parents=True)
    finished.write_text("kept\n")
    config = {**TINY, **{k: v for k, v in change.items() if k not in ("backbones", "methods")}}
    config["backbones"] = {**TINY["backbones"], **change.get("backbones", {})}
    config["methods"] = {**TINY["methods"], **change.get("methods", {})}
    if "datasets" in change:
        name = next(iter(change["datasets"]))
        config["experiments"] = {"fewshot": {**TINY["experiments"]["fewshot"], "datasets": [name]}}
    if "backbones" in change:
        config["experiments"] = {"fewshot": {**TINY["experiments"]["fewshot"], "backbones": ["bad"]}}
    proc = snakemake(tmp_path, "--cores", "1", config=config, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
    assert "Select jobs" not in out  # stopped at parse time: no job started
    assert finished.read_text() == "kept\n" and not (tmp_path / "results" / "runs").exists()

"""Tests for coop.report.paper (the paper's tables beside ours), coop.report.paper_figures / paper_fig5, the artefact
registry (coop.report.artefacts: every registered table and figure made through the CLI) and what the
reports read from the method declarations (coop.report.declarations).

Synthetic runs with known numbers: 2 toy datasets standing for ImageNet and DTD, 2 backbones
standing for RN50 and ViT-B/16; trained methods at 1 and 16 shots with seeds 1-3 offset by
-1/0/+1 (so every 16-shot cell has std exactly 1.00), zero-shot methods at shots 0 / seed 0.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coop.report import paper as P

ROOT = Path(__file__).resolve().parents[1]
SHARED_PAPER = Path("/work/shared/paper")

PAPER_NAMES = {
    "datasets": {"toy_shapes": "imagenet", "toy_textures": "dtd", "toy_shapes_v2": "imagenetv2"},
    "backbones": {"toy-rn": "RN50-quickgelu", "toy-vit": "ViT-B-16-quickgelu"},
}
DATASETS = ["toy_shapes", "toy_textures"]
BACKBONES = ["toy-rn", "toy-vit"]
SEEDS = [1, 2, 3]
BASE = {"toy_shapes": 60.0, "toy_textures": 40.0}
BB = {"toy-rn": 0.0, "toy-vit": 10.0}
DELTA = {
    ("zeroshot", "default"): 0.0, ("zeroshot", "texture"): 3.0, ("ensemble", "default"): 2.0,
    ("linear_probe", "default"): -4.0, ("text_bias", "default"): 3.0,
    ("coop", "end_m16"): 8.0, ("coop", "end_m8"): 7.0, ("coop", "end_m4"): 6.0,
    ("coop", "end_m4_photo"): 6.5, ("coop", "end_m16_csc"): 5.0,
}
# CoOp loses to zero-shot on toy_shapes with toy-rn (a red bar in Fig. 4).
OVERRIDE = {("toy_shapes", "toy-rn", "coop", "end_m16"): -3.0}
SEED_OFFSET = {1: -1.0, 2: 0.0, 3: 1.0}
PARAMS = {
    "end_m16": (16, False, "end"), "end_m8": (8, False, "end"), "end_m4": (4, False, "end"),
    "end_m4_photo": (4, False, "end"), "end_m16_csc": (16, True, "end"),
}
TARGET_SHIFT = {"toy_shapes_v2": -5.0, "toy_shapes_odd": -10.0}
ZERO_SHOT = ("zeroshot", "ensemble")


def mean_acc(dataset, backbone, method, variant) -> float:
    delta = OVERRIDE.get((dataset, backbone, method, variant), DELTA[(method, variant)])
    return BASE[dataset] + BB[backbone] + delta


def make_runs() -> pd.DataFrame:
    rows = []
    for dataset in DATASETS:
        for backbone in BACKBONES:
            for method, variant in DELTA:
                m = mean_acc(dataset, backbone, method, variant)
                base = {"dataset": dataset, "backbone": backbone, "method": method, "variant": variant}
                if method in ZERO_SHOT:
                    rows.append({**base, "shots": 0, "seed": 0, "accuracy": m, "macro_f1": m - 1})
                    continue
                for shots in (1, 16):  # 1 shot is a distractor: 20 points lower
                    for seed in SEEDS:
                        acc = m + SEED_OFFSET[seed] - (20.0 if shots == 1 else 0.0)
                        row = {**base, "shots": shots, "seed": seed, "accuracy": acc, "macro_f1": acc - 1,
                               "n_test": 100, "n_classes": 10, "wall_seconds": 1.0}
                        if method == "coop":
                            n_ctx, csc, pos = PARAMS[variant]
                            row.update(param_n_ctx=n_ctx, param_csc=csc, param_class_token_position=pos)
                        rows.append(row)
    return pd.DataFrame(rows)


def make_transfer() -> pd.DataFrame:
    rows = []
    for source in DATASETS:  # toy_textures as a source is a distractor
        for backbone in BACKBONES:
            for method, variant in [("zeroshot", "default"), ("linear_probe", "default"), ("coop", "end_m16")]:
                for target, shift in TARGET_SHIFT.items():
                    m = mean_acc("toy_shapes", backbone, method, variant) + shift + (0 if source == "toy_shapes" else 30)
                    base = {"source": source, "target": target, "backbone": backbone, "method": method,
                            "variant": variant}
                    if method in ZERO_SHOT:
                        rows.append({**base, "shots": 0, "seed": 0, "accuracy": m, "macro_f1": m})
                        continue
                    for shots in (1, 16):
                        for seed in SEEDS:
                            acc = m + SEED_OFFSET[seed] - (20.0 if shots == 1 else 0.0)
                            rows.append({**base, "shots": shots, "seed": seed, "accuracy": acc, "macro_f1": acc})
    return pd.DataFrame(rows)


def experiment(runs: dict, **kw) -> dict:
    return {"datasets": DATASETS, "backbones": BACKBONES, "shots": [1, 16], "seeds": SEEDS, "runs": runs, **kw}


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return make_runs()


def cell(df: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(df), dtype=bool)
    for k, v in keys.items():
        mask &= (df[k] == v).to_numpy()
    assert mask.sum() == 1, f"{int(mask.sum())} rows match {keys}"
    return df[mask].iloc[0]


def is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ----------------------------------------------------------------------------- paper data, names

def test_packaged_paper_files():
    names = ["README.md", "fig1_prompt_engineering.csv", "table1_domain_generalization.csv",
             "table2_prompt_ensembling.csv", "table3_initialization.csv", "table4_nearest_words.csv",
             "table5_finetuning_methods.csv", "table6_datasets.csv"]
    for name in names:
        assert P.paper_csv(name).is_file(), name
    if SHARED_PAPER.is_dir():  # the package copies are verbatim
        assert sorted(p.name for p in SHARED_PAPER.iterdir()) == sorted(names)
        for name in names:
            assert P.paper_csv(name).read_bytes() == (SHARED_PAPER / name).read_bytes(), name
    t4 = P.load_paper_table("table4_nearest_words")
    assert t4.loc[t4["index"] == 8, "Food101"].item() == "N/A"  # "N/A" stays a word
    assert P.load_paper_table("table1_domain_generalization.csv").shape == (16, 7)


def test_names():
    assert P.paper_dataset("toy_shapes", PAPER_NAMES) == "ImageNet"
    assert P.paper_dataset("toy_textures", PAPER_NAMES) == "DTD"
    assert P.paper_dataset("toy_flowers", PAPER_NAMES) == ""
    assert P.paper_dataset("oxford_flowers") == "Flowers102"  # identity mapping
    assert P.table1_column("toy_shapes_v2", PAPER_NAMES) == "imagenet_v2"
    assert P.table1_column("toy_shapes", PAPER_NAMES) == "imagenet"
    assert P.table1_column("toy_textures", PAPER_NAMES) == ""
    assert P.paper_backbone("toy-rn", PAPER_NAMES) == "RN50"
    assert P.paper_backbone("toy-vit", PAPER_NAMES) == "ViT-B/16"
    assert P.paper_backbone("toy-vit") == ""
    assert P.paper_backbone("ViT-B-32-quickgelu") == "ViT-B/32"
    assert P.experiment_labels({"runs": {"a": "coop/end_m16", "b": "zeroshot"}}) == [
        ("a", "coop", "end_m16"), ("b", "zeroshot", "default")]


def test_bad_inputs(runs):
    exp = experiment({"zeroshot": "zeroshot/default"})
    with pytest.raises(ValueError, match="duplicate"):
        P.table2_prompt_ensembling(pd.concat([runs, runs.iloc[:1]]), exp, PAPER_NAMES)
    with pytest.raises(ValueError, match="lacks columns"):
        P.table2_prompt_ensembling(runs.drop(columns="accuracy"), exp, PAPER_NAMES)
    with pytest.raises(ValueError, match="runs"):
        P.table2_prompt_ensembling(runs, {"datasets": DATASETS}, PAPER_NAMES)


def test_seed_average_drops_incomplete_seeds():
    rows = pd.DataFrame({"dataset": ["a", "b", "a", "b", "a"], "seed": [1, 1, 2, 2, 3],
                         "accuracy": [10.0, 20.0, 30.0, 50.0, 99.0]})
    assert P.seed_average(rows, ["a", "b"]) == {1: 15.0, 2: 40.0}


# ----------------------------------------------------------------------------- tables

def test_table1_domain_generalization(runs):
    exp = experiment({"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default",
                      "coop_m16": "coop/end_m16"},
                     datasets=["toy_shapes"], targets=["toy_shapes_v2", "toy_shapes_odd"])
    t = P.table1_domain_generalization(make_transfer(), runs, exp, PAPER_NAMES)
    assert list(t.columns[:12]) == ["source", "backbone", "paper_backbone", "label", "column", "paper_column",
                                    *P.VALUE_COLUMNS]
    assert len(t) == 2 * 3 * 3  # backbones x labels x (source + 2 targets)
    assert list(dict.fromkeys(t["column"])) == ["toy_shapes", "toy_shapes_v2", "toy_shapes_odd"]

    z = cell(t, backbone="toy-rn", label="zeroshot", column="toy_shapes")
    assert (z["paper_backbone"], z["paper_column"], z["role"]) == ("RN50", "imagenet", "source")
    assert (z["ours"], z["ours_mean"], z["ours_std"], z["n_seeds"]) == ("60.00", 60.0, 0.0, 1)
    assert z["paper"] == 58.18 and is_nan(z["diff"])  # a stand-in: the paper's number is a role, no diff

    c = cell(t, backbone="toy-vit", label="coop_m16", column="toy_shapes_v2")  # 60 + 10 + 8 - 5
    assert (c["ours"], c["ours_mean"], c["ours_std"], c["n_seeds"], c["shots"]) == ("73.00 ± 1.00", 73.0, 1.0, 3, 16)
    assert (c["paper_column"], c["paper"], c["role"]) == ("imagenet_v2", 64.18, "target") and is_nan(c["diff"])

    zt = cell(t, backbone="toy-rn", label="zeroshot", column="toy_shapes_v2")
    assert (zt["ours_mean"], zt["paper"]) == (55.0, 51.34)
    lp = cell(t, backbone="toy-rn", label="linear_probe", column="toy_shapes")
    assert (lp["ours"], lp["paper"]) == ("56.00 ± 1.00", 55.87)

    odd = t[t["column"] == "toy_shapes_odd"]  # no paper counterpart: empty paper cells
    assert (odd["paper_column"] == "").all() and odd["paper"].isna().all() and odd["diff"].isna().all()
    assert cell(t, backbone="toy-rn", label="coop_m16", column="toy_shapes_odd")["ours_mean"] == 47.0

    md = P.paper_markdown(t)
    lines = md.splitlines()
    assert lines[0] == ("| source | backbone | paper_backbone | label | toy_shapes (imagenet) ours | "
                        "toy_shapes (imagenet) paper | toy_shapes_v2 (imagenet_v2) ours | toy_shapes_v2 (imagenet_v2) paper | "
                        "toy_shapes_odd ours | toy_shapes_odd paper |")  # no diff column beside a stand-in
    assert lines[1].startswith("| --- | --- | --- | --- | ---: |")
    assert "| toy_shapes | toy-rn | RN50 | zeroshot | 60.00 | 58.18 | 55.00 | 51.34 | 50.00 |  |" in md
    assert len(lines) == 2 + 2 * 3


def test_table1_paper_cells_need_an_imagenet_source(runs):
    exp = experiment({"zeroshot": "zeroshot/default"}, datasets=["toy_shapes"], targets=["toy_shapes_v2"])
    t = P.table1_domain_generalization(make_transfer(), runs, exp, {})  # identity names: nothing maps
    assert t["paper"].isna().all() and (t["paper_backbone"] == "").all()
    assert cell(t, backbone="toy-rn", column="toy_shapes_v2")["ours_mean"] == 55.0


def test_table2_prompt_ensembling(runs):
    exp = experiment({"prompt_engineering": "zeroshot/default", "prompt_ensembling": "ensemble/default",
                      "coop": "coop/end_m16"})
    t = P.table2_prompt_ensembling(runs, exp, PAPER_NAMES)
    assert list(t.columns[:4]) == ["dataset", "paper_dataset", "label", "column"]
    assert len(t) == 2 * 3 * 2
    e = cell(t, dataset="toy_shapes", label="prompt_ensembling", column="toy-vit")
    assert (e["paper_column"], e["ours"], e["paper"]) == ("ViT-B/16", "72.00", 68.74) and is_nan(e["diff"])
    c = cell(t, dataset="toy_shapes", label="coop", column="toy-rn")
    assert (c["ours"], c["ours_std"], c["n_seeds"], c["paper"]) == ("57.00 ± 1.00", 1.0, 3, 62.95)
    dtd = t[t["dataset"] == "toy_textures"]  # Table 2 is ImageNet only
    assert (dtd["paper_dataset"] == "DTD").all() and dtd["paper"].isna().all()
    md = P.paper_markdown(t)
    assert md.splitlines()[0] == (
        "| dataset | paper_dataset | label | toy-rn (RN50) ours | toy-rn (RN50) paper | "
        "toy-vit (ViT-B/16) ours | toy-vit (ViT-B/16) paper |")
    assert "| toy_shapes | ImageNet | coop | 57.00 ± 1.00 | 62.95 | 78.00 ± 1.00 | 71.92 |" in md
    assert "| toy_textures | DTD | prompt_engineering | 40.00 |  | 50.00 |  |" in md


def test_table3_initialization(runs):
    exp = experiment({"random": "coop/end_m4", "a photo of a": "coop/end_m4_photo"})
    t = P.table3_initialization(runs, exp, PAPER_NAMES)
    assert list(t.columns[:2]) == ["label", "column"] and len(t) == 4
    r = cell(t, label="random", column="toy-rn")  # (66 + 46) / 2 per seed, +-1
    assert (r["ours"], r["ours_mean"], r["ours_std"], r["n_seeds"]) == ("56.00 ± 1.00", 56.0, 1.0, 3)
    assert (r["paper"], r["n_datasets"], r["paper_context_length"]) == (72.65, 2, 4) and is_nan(r["diff"])
    a = cell(t, label="a photo of a", column="toy-rn")
    assert (a["ours_mean"], a["paper"]) == (56.5, 72.65) and is_nan(a["diff"])
    assert t.loc[t["column"] == "toy-vit", "paper"].isna().all()  # the paper's Table 3 is RN50
    assert cell(t, label="random", column="toy-vit")["ours_mean"] == 66.0
    assert "| random | 56.00 ± 1.00 | 72.65 | 66.00 ± 1.00 |  |" in P.paper_markdown(t)


def nearest_records() -> list[dict]:
    paper_words = ["potd", "that", "filmed"]
    unified = {"dataset": "toy_shapes", "backbone": "toy-rn", "method": "coop", "variant": "end_m16",
               "shots": 16, "seed": 1, "csc": False,
               "nearest": [{"index": i, "class": None, "token": (paper_words[i - 1] if i <= 3 else f"w{i}"),
                            "distance": 1.0 + i / 10} for i in range(1, 17)]}
    short = {"dataset": "toy_textures", "backbone": "toy-rn", "method": "coop", "variant": "end_m4",
             "shots": 16, "seed": 1, "csc": False,
             "nearest": [{"index": i, "class": None, "token": f"t{i}", "distance": 0.5} for i in range(1, 5)]}
    csc = {"dataset": "toy_shapes", "backbone": "toy-rn", "method": "coop", "variant": "end_m16_csc",
           "shots": 16, "seed": 1, "csc": True,
           "nearest": [{"index": i, "class": c, "token": f"{c}{i}", "distance": 2.0 + i}
                       for c in ("circle", "square") for i in (1, 2)]}
    other = {**unified, "variant": "end_m8"}  # not in the experiment
    other_seed = {**unified, "seed": 2}  # not in the experiment's seeds
    return [unified, short, csc, other, other_seed]


def test_table4_nearest_words():
    exp = {"datasets": DATASETS, "backbones": ["toy-rn"], "shots": [16], "seeds": [1],
           "runs": {"unified": "coop/end_m16", "m4": "coop/end_m4", "csc": "coop/end_m16_csc"}}
    t = P.table4_nearest_words(nearest_records(), exp, PAPER_NAMES)
    assert list(t.columns[:8]) == ["backbone", "label", "seed", "index", "column", "paper_column", "ours", "paper"]
    assert len(t) == 16 + 4
    first = cell(t, label="unified", index=1)
    assert (first["column"], first["paper_column"], first["ours"], first["paper"]) == (
        "toy_shapes", "ImageNet", "potd (1.1000)", "potd (1.7136)")
    assert (first["token"], first["paper_token"], first["paper_distance"]) == ("potd", "potd", 1.7136)
    assert cell(t, label="unified", index=13)["paper"] == "N/A"
    assert cell(t, label="unified", index=5)["paper_token"] == ",..."
    short = t[t["label"] == "m4"]  # DTD is in Table 4, but the paper's contexts have 16 words
    assert list(short["index"]) == [1, 2, 3, 4] and (short["paper"] == "").all()
    md = P.paper_markdown(t).splitlines()
    assert md[0] == ("| backbone | label | seed | index | toy_shapes (ImageNet) ours | toy_shapes (ImageNet) paper | "
                     "toy_textures (DTD) ours | toy_textures (DTD) paper |")
    assert md[2] == "| toy-rn | unified | 1 | 1 | potd (1.1000) | potd (1.7136) |  |  |"
    assert "| toy-rn | m4 | 1 | 4 |  |  | t4 (0.5000) |  |" in md

    c = P.table4_nearest_words_csc(nearest_records(), exp, PAPER_NAMES)
    assert list(c.columns) == ["dataset", "paper_dataset", "backbone", "label", "seed", "class", "index", "token",
                               "distance", "shots"]
    assert len(c) == 4 and list(c["class"]) == ["circle", "circle", "square", "square"]
    assert cell(c, **{"class": "square", "index": 2})[["token", "distance", "paper_dataset"]].tolist() == [
        "square2", 4.0, "ImageNet"]
    assert "| toy_shapes | ImageNet | toy-rn | csc | 1 | circle | 1 | circle1 | 3.00 | 16 |" in P.paper_markdown(c)


def test_table4_tokens_are_decoded_as_clips_tokenizer_decodes():
    """The nearest words' text (coop.interpret.token_text) is open_clip's decode of the token's id: byte-level
    BPE characters back to UTF-8 ("ðŁĴľ" is the emoji), "</w>" dropped; a lone byte of a character shows U+FFFD."""
    from open_clip.tokenizer import SimpleTokenizer

    from coop.interpret import token_text

    tok = SimpleTokenizer()
    ids = tok.encode("a photo of a café, naïve 💜 🍴 crème")  # each token whole characters
    words = [token_text(tok, i) + (" " if tok.decoder[i].endswith("</w>") else "") for i in ids]
    assert "".join(words) == tok.decode(ids) == "a photo of a café , naïve 💜 🍴 crème "
    split = tok.encode("brûlée")  # "û" falls across two tokens: each shows U+FFFD for its half
    for i in ids + split:
        assert token_text(tok, i) == tok.decode([i]).removesuffix(" ")
    assert "\ufffd" in "".join(token_text(tok, i) for i in split)
    assert token_text(tok, tok.encoder["ðŁĴľ</w>"]) == "\U0001f49c" and token_text(tok, 4882) == "💜"
    assert token_text(tok, tok.encoder["cafÃ©</w>"]) == "café"
    lone = tok.encoder["â</w>"]  # the byte 0xe2 alone (a 3-byte character's first) is no UTF-8 character
    assert token_text(tok, lone) == "\ufffd" == tok.decode([lone]).strip()


def test_table4_rejects_malformed_records():
    rec = nearest_records()[0]
    with pytest.raises(ValueError, match="lacks keys"):
        P.table4_nearest_words([{k: v for k, v in rec.items() if k != "nearest"}], {"runs": {"u": "coop/end_m16"}})
    bad = {**rec, "nearest": [{"index": 1, "token": "x"}]}
    with pytest.raises(ValueError, match="distance"):
        P.table4_nearest_words([bad], {"runs": {"u": "coop/end_m16"}})


def test_table5_finetuning(runs):
    exp = experiment({"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default",
                      "text_bias": "text_bias/default", "coop": "coop/end_m16"})
    t = P.table5_finetuning(runs, exp, PAPER_NAMES)
    assert list(t.columns[:3]) == ["backbone", "paper_backbone", "label"]
    assert {"ours_delta", "paper_delta"} <= set(t.columns)
    c = cell(t, backbone="toy-rn", label="coop", column="toy_shapes")
    assert (c["paper_column"], c["ours"], c["paper"]) == ("imagenet_16shot_rn50", "57.00 ± 1.00", 62.95)
    assert (c["ours_delta"], c["paper_delta"]) == (-3.0, 4.77)
    z = cell(t, backbone="toy-rn", label="zeroshot", column="toy_shapes")
    assert (z["ours"], z["paper"], z["ours_delta"], z["paper_delta"]) == ("60.00", 58.18, 0.0, 0.0)
    tb = cell(t, backbone="toy-rn", label="text_bias", column="toy_shapes")
    assert (tb["ours_mean"], tb["paper"], tb["ours_delta"], tb["paper_delta"]) == (63.0, 60.93, 3.0, 2.75)
    assert t["diff"].isna().all()
    vit = cell(t, backbone="toy-vit", label="coop", column="toy_shapes")  # the paper's Table 5 is RN50
    assert is_nan(vit["paper"]) and is_nan(vit["paper_delta"]) and vit["ours_delta"] == 8.0
    assert t.loc[t["column"] == "toy_textures", "paper"].isna().all()
    assert list(t["label"][::2][:4]) == ["zeroshot", "linear_probe", "text_bias", "coop"]  # rows, then columns
    assert list(t["column"][:2]) == DATASETS
    md = P.paper_markdown(t)
    assert "toy_shapes (imagenet_16shot_rn50) ours Δ zero-shot" in md.splitlines()[0]
    assert "| toy-rn | RN50 | coop | 57.00 ± 1.00 | 62.95 | -3.00 | +4.77 | 48.00 ± 1.00 |  | +8.00 |  |" in md


def test_fig1_prompt_engineering(runs):
    exp = experiment({"a photo of a {}.": "zeroshot/default", "{} texture.": "zeroshot/texture", "coop": "coop/end_m16"})
    t = P.fig1_prompt_engineering(runs, exp, PAPER_NAMES)
    tex = cell(t, backbone="toy-rn", label="{} texture.", column="toy_textures")
    assert (tex["paper_column"], tex["ours"], tex["paper"]) == ("DTD", "43.00", 42.32) and is_nan(tex["diff"])
    c = cell(t, backbone="toy-rn", label="coop", column="toy_textures")
    assert (c["ours"], c["paper"]) == ("48.00 ± 1.00", 63.58)
    assert t.loc[t["column"] == "toy_shapes", "paper"].isna().all()  # Fig. 1 has no ImageNet panel
    assert t.loc[t["backbone"] == "toy-vit", "paper"].isna().all()
    assert "| toy-rn | RN50 | a photo of a {}. | 60.00 |  | 40.00 | 39.83 |" in P.paper_markdown(t)


# The same synthetic runs under the paper's own names (a real-dataset run: each name maps to itself), where the
# tables give the difference to the paper, computed here by hand from the paper's numbers.
REAL = {"toy_shapes": "imagenet", "toy_textures": "dtd", "toy_shapes_v2": "imagenetv2",
        "toy-rn": "RN50-quickgelu", "toy-vit": "ViT-B-16-quickgelu"}
ELEVEN = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft",
          "sun397", "dtd", "eurosat", "ucf101"]


def as_real(df: pd.DataFrame) -> pd.DataFrame:
    return df.replace({c: REAL for c in ("dataset", "source", "target", "backbone") if c in df.columns})


def real_experiment(runs: dict, **kw) -> dict:
    exp = experiment(runs, **kw)
    return {**exp, **{k: [REAL.get(n, n) for n in exp[k]] for k in ("datasets", "backbones", "targets") if k in exp}}


def test_diff_only_where_the_dataset_is_the_papers_own(runs):
    real = as_real(runs)
    exp = real_experiment({"zeroshot": "zeroshot/default", "coop_m16": "coop/end_m16"}, datasets=["toy_shapes"],
                          targets=["toy_shapes_v2", "toy_shapes_odd"])
    t1 = P.table1_domain_generalization(as_real(make_transfer()), real, exp, {})
    assert cell(t1, backbone="RN50-quickgelu", label="zeroshot", column="imagenet")["diff"] == 1.82  # 60 - 58.18
    assert cell(t1, backbone="ViT-B-16-quickgelu", label="coop_m16", column="imagenetv2")["diff"] == 8.82  # 73 - 64.18
    md1 = P.paper_markdown(t1)
    assert md1.splitlines()[0] == (
        "| source | backbone | paper_backbone | label | imagenet ours | imagenet paper | imagenet diff | "
        "imagenetv2 (imagenet_v2) ours | imagenetv2 (imagenet_v2) paper | imagenetv2 (imagenet_v2) diff | "
        "toy_shapes_odd ours | toy_shapes_odd paper |")
    assert "| imagenet | RN50-quickgelu | RN50 | zeroshot | 60.00 | 58.18 | +1.82 | 55.00 | 51.34 | +3.66 | 50.00 |  |" in md1

    # Table 2 with the real ImageNet and a toy stand-in for it side by side: a diff for the first only.
    mixed = pd.concat([real, runs[runs["dataset"] == "toy_shapes"].replace({"backbone": REAL})], ignore_index=True)
    exp2 = real_experiment({"prompt_ensembling": "ensemble/default", "coop": "coop/end_m16"},
                           datasets=["toy_shapes", "toy_textures"])
    exp2["datasets"] = ["imagenet", "toy_shapes"]
    names = {"datasets": {"toy_shapes": "imagenet"}}
    t2 = P.table2_prompt_ensembling(mixed, exp2, names)
    assert cell(t2, dataset="imagenet", label="coop", column="RN50-quickgelu")["diff"] == -5.95  # 57 - 62.95
    assert cell(t2, dataset="imagenet", label="prompt_ensembling", column="ViT-B-16-quickgelu")["diff"] == 3.26
    stand_in = cell(t2, dataset="toy_shapes", label="coop", column="RN50-quickgelu")
    assert stand_in["paper"] == 62.95 and is_nan(stand_in["diff"])
    md2 = P.paper_markdown(t2)
    assert "| imagenet | ImageNet | coop | 57.00 ± 1.00 | 62.95 | -5.95 | 78.00 ± 1.00 | 71.92 | +6.08 |" in md2
    assert "| toy_shapes | ImageNet | coop | 57.00 ± 1.00 | 62.95 |  | 78.00 ± 1.00 | 71.92 |  |" in md2
    from coop.report.paper_output import stand_in_note

    assert stand_in_note({**exp2, "paper_names": names}) == (
        "Paper columns: the paper's result for the role our cell plays (toy_shapes plays ImageNet), not a target "
        "for it; a difference to the paper is given only where the dataset and backbone are the paper's own.")
    assert stand_in_note({**exp, "paper_names": {}}) is None
    # The real ImageNet on a toy backbone standing in for RN50: no diff either.
    toy_bb = P.table2_prompt_ensembling(runs.replace({"dataset": REAL}), {**exp2, "datasets": ["imagenet"],
                                        "backbones": BACKBONES}, PAPER_NAMES)
    assert toy_bb["paper"].notna().all() and toy_bb["diff"].isna().all()

    t5 = P.table5_finetuning(real, real_experiment({"zeroshot": "zeroshot/default", "text_bias": "text_bias/default",
                                                    "coop": "coop/end_m16"}), {})
    tb = cell(t5, backbone="RN50-quickgelu", label="text_bias", column="imagenet")
    assert (tb["diff"], cell(t5, backbone="RN50-quickgelu", label="coop", column="imagenet")["diff"]) == (2.07, -5.95)
    f1 = P.fig1_prompt_engineering(real, real_experiment({"{} texture.": "zeroshot/texture"}), {})
    assert cell(f1, backbone="RN50-quickgelu", column="dtd")["diff"] == 0.68  # 43 - 42.32

    # Table 3's paper number is the average over the paper's 11 datasets: a diff for that average only.
    t3 = P.table3_initialization(real, real_experiment({"random": "coop/end_m4"}), {})
    assert cell(t3, column="RN50-quickgelu")["paper"] == 72.65 and t3["diff"].isna().all()
    acc = {d: 60.0 + i for i, d in enumerate(ELEVEN)}  # mean 65
    eleven = pd.DataFrame([{"dataset": d, "backbone": "RN50-quickgelu", "method": "coop", "variant": "end_m4",
                            "shots": 16, "seed": s, "accuracy": a + SEED_OFFSET[s]}
                           for d, a in acc.items() for s in SEEDS])
    t3 = P.table3_initialization(eleven, {"datasets": ELEVEN, "backbones": ["RN50-quickgelu"], "shots": [16],
                                          "seeds": SEEDS, "runs": {"random": "coop/end_m4"}}, {})
    assert (cell(t3, column="RN50-quickgelu")["ours"], cell(t3, column="RN50-quickgelu")["diff"]) == (
        "65.00 ± 1.00", -7.65)  # 65 - 72.65


def test_write_paper_table(tmp_path, runs):
    exp = experiment({"prompt_engineering": "zeroshot/default", "coop": "coop/end_m16"})
    t = P.table2_prompt_ensembling(runs, exp, PAPER_NAMES)
    csv, md = tmp_path / "out" / "table2.csv", tmp_path / "out" / "table2.md"
    P.write_paper_table(t, csv, md, title="Table 2")
    back = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(t.columns)
    assert back["ours"].tolist() == t["ours"].tolist()
    assert np.allclose(back["ours_mean"], t["ours_mean"]) and back["paper"].isna().tolist() == t["paper"].isna().tolist()
    text = md.read_text()
    assert text.startswith("**Table 2**\n\n| dataset |") and text == P.paper_markdown(t, "Table 2")
    assert sorted(p.name for p in csv.parent.iterdir()) == ["table2.csv", "table2.md"]  # no temp files left


def test_import_is_light():
    code = "import sys, coop.report.paper; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ----------------------------------------------------------------------------- figures

def assert_png_pdf(png: Path, pdf: Path) -> None:
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_gain_over_zeroshot(tmp_path, runs):
    from matplotlib.colors import to_rgba

    from coop.report.paper_figures import NEGATIVE_COLOR, POSITIVE_COLOR, gain_over_zeroshot, plot_gain_over_zeroshot

    exp = experiment({"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default", "coop": "coop/end_m16"})
    g = gain_over_zeroshot(runs, exp, PAPER_NAMES)
    rn = g[g["backbone"] == "toy-rn"]
    assert list(rn["dataset"]) == ["toy_textures", "toy_shapes", "average"]  # sorted by gain, average last
    assert rn["gain"].tolist() == [8.0, -3.0, 2.5] and rn["shots"].tolist() == [16, 16, 16]
    assert g.loc[g["backbone"] == "toy-vit", "gain"].tolist() == [8.0, 8.0, 8.0]

    png, pdf = tmp_path / "fig4.png", tmp_path / "fig4.pdf"
    fig = plot_gain_over_zeroshot(runs, exp, png, pdf, paper_names=PAPER_NAMES)
    assert_png_pdf(png, pdf)
    assert len(fig.axes) == 2
    bars = {p.get_gid(): p for p in fig.axes[0].patches}
    assert len(fig.axes[0].patches) == 3 and set(bars) == {"toy_textures", "toy_shapes", "average"}
    assert np.allclose(bars["toy_shapes"].get_facecolor(), to_rgba(NEGATIVE_COLOR))
    assert np.allclose(bars["toy_textures"].get_facecolor(), to_rgba(POSITIVE_COLOR))
    assert bars["toy_shapes"].get_width() == -3.0 and bars["average"].get_width() == 2.5
    assert bars["toy_textures"].get_y() > bars["toy_shapes"].get_y() > bars["average"].get_y()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["toy_textures (DTD)", "toy_shapes (ImageNet)",
                                                                     "Average"]
    assert all(np.allclose(p.get_facecolor(), to_rgba(POSITIVE_COLOR)) for p in fig.axes[1].patches)
    assert fig.axes[0].get_title() == "toy-rn (RN50)"
    assert fig.get_suptitle() == "CoOp (16 shots) vs. Zero-shot CLIP"  # the declared names, not "coop"


def test_context_length(tmp_path, runs):
    from coop.report.paper_fig5 import context_length_data, plot_context_length

    exp = experiment({"m4": "coop/end_m4", "m8": "coop/end_m8", "m16": "coop/end_m16", "m16_csc": "coop/end_m16_csc",
                      "zeroshot": "zeroshot/default"}, backbones=["toy-rn"])
    d = context_length_data(runs, exp)
    uni = d[d["series"] == "end, unified"]
    assert uni["n_ctx"].tolist() == [4, 8, 16]
    assert uni["acc_mean"].tolist() == [56.0, 57.0, 52.5] and uni["acc_std"].tolist() == [1.0, 1.0, 1.0]
    assert d.loc[d["series"] == "end, class-specific", "n_ctx"].tolist() == [16]

    png, pdf = tmp_path / "fig5a.png", tmp_path / "fig5a.pdf"
    fig = plot_context_length(runs, exp, png, pdf, paper_names=PAPER_NAMES)
    assert_png_pdf(png, pdf)
    lines = {ln.get_gid(): ln for ln in fig.axes[0].lines if ln.get_gid()}
    assert set(lines) == {"end, unified", "end, class-specific", "zero-shot: zeroshot"}
    assert list(lines["end, unified"].get_xdata()) == [4, 8, 16]
    assert list(lines["end, unified"].get_ydata()) == [56.0, 57.0, 52.5]
    assert list(lines["end, class-specific"].get_xdata()) == [16]
    assert list(lines["zero-shot: zeroshot"].get_ydata()) == [50.0, 50.0]
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Average accuracy over 2 datasets (%)"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "Zero-shot CLIP", "end, class-specific", "end, unified"]
    lo, hi = ax.get_ylim()  # the points span 50-58: the axis spans 20 points, so seed noise is no trend
    assert hi - lo >= 20 and lo <= 50 and hi >= 58
    assert len([c for c in ax.collections if c.get_segments()]) >= 2  # the error bars are still drawn
    one = plot_context_length(runs, {**exp, "datasets": ["toy_shapes"]}, tmp_path / "one.png",
                              paper_names=PAPER_NAMES)
    assert one.axes[0].get_ylabel() == "Accuracy on toy_shapes (ImageNet) (%)"

    # As the workflow reads runs.csv back: empty param cells stay "" and numbers/booleans are strings.
    from coop.report.tables import read_table, write_table

    write_table(runs, tmp_path / "runs.csv")
    d_csv = context_length_data(read_table(tmp_path / "runs.csv"), exp)
    assert d_csv[["n_ctx", "series", "acc_mean", "acc_std"]].equals(d[["n_ctx", "series", "acc_mean", "acc_std"]])

    # Without param_* columns the context length comes from the label ("m8") or variant ("end_m8").
    bare = runs.drop(columns=[c for c in runs.columns if c.startswith("param_")])
    d2 = context_length_data(bare, exp)
    assert d2[["n_ctx", "series", "acc_mean"]].equals(d[["n_ctx", "series", "acc_mean"]])
    bare = bare.replace({"variant": {"end_m4_photo": "photo_init"}})
    with pytest.raises(ValueError, match="n_ctx"):
        context_length_data(bare, experiment({"random": "coop/photo_init"}))


def test_backbones(tmp_path, runs):
    from coop.report.paper_fig5 import backbone_data, plot_backbones

    exp = experiment({"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default", "coop": "coop/end_m16"})
    d = backbone_data(runs, exp, PAPER_NAMES)
    assert d["acc_mean"].tolist() == [50.0, 46.0, 52.5, 60.0, 56.0, 68.0]
    assert d["acc_std"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert d["n_seeds"].tolist() == [1, 3, 3, 1, 3, 3]

    png, pdf = tmp_path / "fig5b.png", tmp_path / "fig5b.pdf"
    fig = plot_backbones(runs, exp, png, pdf, paper_names=PAPER_NAMES)
    assert_png_pdf(png, pdf)
    (ax,) = fig.axes
    bars = {p.get_gid(): p for p in ax.patches}
    assert len(ax.patches) == 6
    assert bars["toy-vit/coop"].get_height() == 68.0 and bars["toy-rn/zeroshot"].get_height() == 50.0
    assert bars["toy-rn/coop"].get_x() < bars["toy-vit/zeroshot"].get_x()  # grouped by backbone
    assert [t.get_text() for t in ax.get_xticklabels()] == ["toy-rn (RN50)", "toy-vit (ViT-B/16)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Zero-shot CLIP", "Linear probe CLIP", "CoOp"]
    assert ax.get_ylabel() == "Average accuracy over 2 datasets (%)"
    keys = experiment({"prompt_engineering": "zeroshot/default", "coop_m16": "coop/end_m16"}, datasets=["toy_shapes"])
    (ax,) = plot_backbones(runs, keys, tmp_path / "keys.png", paper_names=PAPER_NAMES).axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prompt engineering", "coop m16"]
    assert ax.get_ylabel() == "Accuracy on toy_shapes (ImageNet) (%)"


# ----------------------------------------------------------------------------- the artefact registry

from coop.report import artefacts as A  # noqa: E402
from coop.report import declarations as D  # noqa: E402

# Every artefact is built from the synthetic runs with this one experiment (every kind of label).
ALL_LABELS = {"zeroshot": "zeroshot/default", "ensemble": "ensemble/default", "linear_probe": "linear_probe/default",
              "text_bias": "text_bias/default", "coop": "coop/end_m16", "m4": "coop/end_m4", "m8": "coop/end_m8",
              "csc": "coop/end_m16_csc"}
# The Markdown titles before the registry (cli.PAPER_TABLE_TITLES): the .md files must not change.
OLD_TITLES = {
    "table1_domain_generalization": "Table 1: domain generalisation (trained on the source, 16 shots)",
    "table2_prompt_ensembling": "Table 2: hand-crafted prompt vs prompt ensembling vs CoOp",
    "table3_initialization": "Table 3: random vs word initialisation of the context (M=4)",
    "table4_nearest_words": "Table 4: nearest words to the learned context vectors",
    "table5_finetuning_methods": "Table 5: CoOp vs other ways to adapt CLIP (16 shots)",
    "fig1_prompt_engineering": "Fig. 1: hand-written prompt variants vs CoOp",
}


@pytest.fixture(scope="module")
def input_files(tmp_path_factory, runs) -> dict:
    """Input name -> file(s): runs.csv, transfer.csv, the nearest-words files and fewshot.csv."""
    import json

    from coop.report.tables import fewshot_table, write_table

    d = tmp_path_factory.mktemp("inputs")
    write_table(runs, d / "runs.csv")
    write_table(make_transfer(), d / "transfer.csv")
    nearest = []
    for i, rec in enumerate(nearest_records()):
        (d / f"nearest{i}.json").write_text(json.dumps(rec))
        nearest.append(str(d / f"nearest{i}.json"))
    fs = runs.assign(n_test=runs["n_test"].fillna(100), wall_seconds=runs["wall_seconds"].fillna(1.0))
    write_table(fewshot_table(fs), d / "fewshot.csv")
    files = {"runs": d / "runs.csv", "transfer": d / "transfer.csv", "nearest": nearest, "fewshot": d / "fewshot.csv"}
    assert set(files) == set(A.INPUTS)
    return files


@pytest.mark.parametrize("art", A.all_artefacts(), ids=lambda a: a.name)
def test_every_artefact(tmp_path, input_files, art):
    """Each registered table and figure, made by the CLI from its declared inputs: its CSV has its declared
    columns and rows, its title and caption are not empty."""
    import json

    from coop.cli import main
    from coop.report.tables import read_table

    assert art.title.strip() and art.caption_text()
    assert art.caption_path.is_file() and art.caption_path == ROOT / "workflow" / art.caption
    exp = json.dumps(experiment(ALL_LABELS, targets=["toy_shapes_v2", "toy_shapes_odd"], paper_names=PAPER_NAMES))
    argv = ["report", art.command, "--what", art.name, "--experiment", exp, *art.cli_args(input_files)]
    csv = tmp_path / f"{art.name}.csv"
    if art.kind == "table":
        md = tmp_path / f"{art.name}.md"
        assert main([*argv, "--csv", str(csv), "--md", str(md)]) == 0
        assert md.read_text().startswith(
            f"**{art.title}**\n\n*Paper columns: the paper's result for the role our cell plays (toy_shapes plays "
            "ImageNet, toy_textures plays DTD, toy_shapes_v2 plays ImageNetV2, toy-rn plays RN50, toy-vit plays "
            "ViT-B/16), not a target for it; a difference to the paper is given only where the dataset and backbone "
            "are the paper's own.*\n\n| ")
        assert art.title == OLD_TITLES[art.name]
    else:
        png, pdf = tmp_path / f"{art.name}.png", tmp_path / f"{art.name}.pdf"
        assert main([*argv, "--png", str(png), "--pdf", str(pdf), "--csv", str(csv)]) == 0
        assert_png_pdf(png, pdf)
    df = read_table(csv)
    assert list(df.columns) == list(art.columns) and len(df) > 0
    if art.kind == "table":  # the CLI writes what the builder returns
        built = art.build({**{n: None for n in art.inputs}, **_loaded(art, input_files)}, json.loads(exp))
        assert list(built.columns) == list(art.columns) and len(built) == len(df)


def _loaded(art, files) -> dict:
    from coop.report.paper_output import read_inputs

    return read_inputs({n: files[n] for n in art.inputs})


def test_artefact_registry():
    names = A.artefact_names()
    assert names == [*OLD_TITLES, "fig3_fewshot", "fig4_gain_over_zeroshot", "fig5a_context_length",
                     "fig5b_backbones"]
    assert A.artefact_names("table") == list(OLD_TITLES)
    for art in A.all_artefacts():
        assert art.kind in A.KINDS and set(art.inputs) <= set(A.INPUTS) and len(set(art.columns)) == len(art.columns)
        assert callable(art.function()) and callable(art.data_function())
        assert all(callable(A._resolve(ref)) for _, ref in art.appendix)
        assert set(art.outputs) == ({"csv", "md"} if art.kind == "table" else {"png", "pdf"})
    assert [a.name for a in A.artefacts_for(["fewshot", "no_such_experiment"])] == [
        "fig3_fewshot", "fig4_gain_over_zeroshot"]
    assert [a.name for a in A.artefacts_for(["fewshot", "domain_shift"], kind="table")] == [
        "table1_domain_generalization"]
    # Every experiment an artefact is drawn from is one the config schema accepts: the schema takes any
    # experiment name (a new artefact needs no schema entry), each validated as an experiment.
    import jsonschema
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    exp = {"datasets": ["toy_shapes"], "backbones": ["toy-rn"], "runs": {"zeroshot": "zeroshot/default"}}
    for e in A.experiments():
        jsonschema.validate({"data_root": "d", "backbones": {"b": {}}, "methods": {"zeroshot": {"default": {}}},
                             "seeds": [1], "experiments": {e: exp}}, schema)
    t1, t4 = A.get_artefact("table1_domain_generalization"), A.get_artefact("table4_nearest_words")
    assert t1.input_files() == {"transfer": "results/tables/transfer.csv", "runs": "results/tables/runs.csv"}
    assert t4.input_files(["a.json"]) == {"nearest": ["a.json"]}
    assert t1.cli_args(t1.input_files()) == ["--transfer", "results/tables/transfer.csv",
                                             "--runs", "results/tables/runs.csv"]
    assert t4.cli_args({"nearest": []}) == [] and t4.cli_args({"nearest": ["a", "b"]}) == ["--nearest", "a", "b"]
    assert t1.outputs["csv"] == "results/tables/table1_domain_generalization.csv"
    with pytest.raises(A.ArtefactError, match="Unknown paper artefact"):
        A.get_artefact("table9")
    with pytest.raises(A.ArtefactError, match="kind"):
        A.register(A.Artefact(name="x", experiment="e", kind="chart", builder="m:f", inputs=(), title="t",
                              columns=("a",)))
    with pytest.raises(A.ArtefactError, match="already taken"):
        A.register(A.Artefact(**{**t1.__dict__, "title": "another"}))


def test_registry_import_is_light():
    code = ("import sys, coop.report.artefacts as A; arts = A.artefacts_for(['fewshot', 'domain_shift']); "
            "[a.caption_path for a in arts]; [a.input_files() for a in arts]; "
            "assert not {'pandas', 'matplotlib', 'torch'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_table6_names_are_the_paper_names():
    """prepare's Table 6 check reads paper dataset names: they are paper_names.paper_dataset's."""
    import csv

    from coop.data import prepare

    with P.paper_csv("table6_datasets.csv").open("r", encoding="utf-8") as f:
        table6 = {row["dataset"] for row in csv.DictReader(f)}
    assert set(P.PAPER_DATASETS.values()) == table6
    assert all(P.paper_dataset(key) == name for key, name in P.PAPER_DATASETS.items())
    own = getattr(prepare, "_TABLE6_NAMES", None)  # until prepare calls paper_dataset itself
    if own is not None:
        assert all(P.paper_dataset(key) == name for key, name in own.items())


# ----------------------------------------------------------------------------- method declarations

def test_declared_legends_match_the_old_tables():
    """The names, styles, order and variant rule figures.py used to hard-code are the declared ones."""
    from coop.report.figures import series_label, series_style

    old_names = {"zeroshot": "Zero-shot CLIP", "ensemble": "Prompt ensembling", "coop": "CoOp",
                 "linear_probe": "Linear probe CLIP"}
    old_order = {"zeroshot": 0, "ensemble": 1, "coop": 2, "linear_probe": 3}
    old_styles = {"zeroshot": {"marker": "*", "linestyle": "none", "markersize": 13},
                  "ensemble": {"marker": "D", "linestyle": "none", "markersize": 7},
                  "coop": {"marker": "o", "linestyle": "-", "markersize": 5},
                  "linear_probe": {"marker": "s", "linestyle": "--", "markersize": 5}}
    for method, name in old_names.items():
        assert series_label(method, "default") == (f"{name} (default)" if method == "coop" else name)
        assert series_label(method, "v2") == f"{name} (v2)"
        assert series_style(method) == old_styles[method]
        assert D.legend_order(method) == old_order[method]
        assert D.is_zero_shot(method) == (method in ZERO_SHOT)
    assert D.DEFAULT_STYLE == {"marker": "^", "linestyle": ":", "markersize": 5}  # the old fallback
    # A method this process does not know: its name, the default style, last; zero-shot if its runs say so.
    assert series_label("unloaded_plugin", "default") == "unloaded_plugin"
    assert series_style("unloaded_plugin") == D.DEFAULT_STYLE and D.legend_order("unloaded_plugin") == math.inf
    assert not D.is_zero_shot("unloaded_plugin") and not D.is_interpretable("unloaded_plugin")
    assert D.is_zero_shot("unloaded_plugin", pd.DataFrame({"shots": [0, 0]}))
    assert not D.is_zero_shot("unloaded_plugin", pd.DataFrame({"shots": [0, 16]}))
    # The zero-shot baseline: the label "zeroshot" aside, zero-shot CLIP before prompt ensembling.
    assert D.first_zero_shot([("ens", "ensemble"), ("lp", "linear_probe"), ("zs", "zeroshot")]) == "zs"
    assert D.first_zero_shot([("ens", "ensemble"), ("coop", "coop")]) == "ens"
    assert D.first_zero_shot([("coop", "coop")]) is None
    assert D.first_learned_context([("lp", "linear_probe"), ("c4", "coop"), ("c16", "coop")]) == "c4"
    # A run label in a figure: the method's display name where the label is the method, else readable.
    assert [D.label_display(lb, lb) for lb in old_names] == list(old_names.values())
    assert D.label_display("prompt_engineering", "zeroshot") == "prompt engineering"
    assert D.label_display("coop_m16", "coop") == "coop m16" and D.label_display("unloaded", "unloaded") == "unloaded"


def test_a_registered_method_gets_its_declared_legend(tmp_path):
    from dataclasses import dataclass

    from coop.methods import registry
    from coop.methods.registry import Method, register
    from coop.report.figures import plot_fewshot, series_label, series_style

    @dataclass
    class ThrowawayConfig:
        alpha: float = 1.0

    style = {"marker": "P", "linestyle": "-.", "markersize": 9}
    register(Method(name="throwaway_head", config=ThrowawayConfig, train=lambda ctxs, cfg: [], few_shot=True,
                    needs_images=False, description="a test method", display_name="Throwaway head",
                    style=style, order=-1, show_variant=True))
    try:
        assert series_label("throwaway_head", "default") == "Throwaway head (default)"
        assert series_label("throwaway_head", "big") == "Throwaway head (big)"
        assert series_style("throwaway_head") == style and series_style("throwaway_head") is not style
        assert not D.is_zero_shot("throwaway_head") and not D.learns_context("throwaway_head")
        table = pd.DataFrame({"dataset": "d", "backbone": "b", "method": ["throwaway_head", "zeroshot"],
                              "variant": "default", "shots": [4, 0], "acc_mean": [50.0, 40.0], "acc_std": 0.0,
                              "acc_ci95": 0.0, "f1_mean": 0.0, "f1_std": 0.0, "n_seeds": 1,
                              "wall_seconds_mean": 1.0})
        fig = plot_fewshot(table, tmp_path / "f.png")
        (line,) = [ln for ln in fig.axes[1].get_lines() if ln.get_label() == "Throwaway head (default)"]
        assert (line.get_marker(), line.get_linestyle(), line.get_markersize()) == ("P", "-.", 9)
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Throwaway head (default)", "Zero-shot CLIP"]
    finally:
        registry.METHODS.pop("throwaway_head", None)
    assert series_label("throwaway_head", "default") == "throwaway_head"

"""`coop bench` on a tiny setting: the record has the ratios the issue asks for (no timing assertions), and the
official formulation it times trains what ours trains."""
import json

import pytest
import torch
import torch.nn.functional as F

from coop.bench import BenchConfig, activation_bytes, class_names, load_bench_model, run_bench

TINY = dict(step_classes=(3, 6, 12), measured_classes=(3, 6), reps=1, official_reps=1, n_ctx=4, batch_size=4, n_test=20,
            test_batch=10, eval_classes=3, fused_classes=3, fused_shots=2, fused_epochs=2, memory_classes=(3, 6),
            memory_target=12, model="toy-rn", fused_seeds=2, job_shots=2, job_epoch_scale=0.02, job_test_per_class=2)


def test_bench_writes_the_ratios(tmp_path):
    out = tmp_path / "bench" / "bench.json"
    lines = []
    record = run_bench(BenchConfig(**TINY), out, log=lines.append)
    saved = json.loads(out.read_text())
    for key in ("coop_step_speedup_100cls", "eval_speedup", "fused_seeds_speedup", "fused_variants_speedup"):
        assert isinstance(saved[key], float) and saved[key] > 0, key
    assert [s["classes"] for s in saved["steps"]] == [3, 6, 12]
    assert [s["measured"] for s in saved["steps"]] == [True, True, False]
    assert all(s["official_s"] > 0 and s["ours_s"] > 0 for s in saved["steps"])
    assert saved["threads"] >= 1 and saved["device"] == "cpu" and saved["torch"]
    mem = saved["activation_memory"]
    assert mem["full77_fp32_bytes"] > mem["ours_fp32_bytes"] > mem["ours_fp16_bytes"] > 0
    table = lines[-2]
    assert saved["fused_seeds"]["variants"]["variants"] == 4 and "| Fig. 3's 4 CoOp variants" in table
    assert "| CoOp step, 12 classes (scaled" in table and record["wall_seconds"] > 0
    job = saved["whole_job"]
    # 10 classes x 2 shots = 20 images, batch 4: 5 steps an epoch; 100 epochs at 2 shots x 0.02 = 2 epochs
    assert (job["classes"], job["n_train"], job["epochs"], job["steps_per_seed"]) == (10, 20, 2, 10)
    assert job["fairness"]["steps_ours"] == job["fairness"]["steps_official"] == [10, 10]
    assert job["fairness"]["accuracy_ours"] == job["fairness"]["accuracy_official"]
    assert job["fairness"]["max_ctx_diff"] < 1e-4
    ours, official = job["in_process"]["ours"], job["in_process"]["official"]
    parts = ("load_s", "prepare_s", "views_s", "train_s", "finish_s")
    assert ours["total_s"] == pytest.approx(sum(ours[k] for k in parts), abs=0.05)
    assert official["total_s"] == pytest.approx(official["load_s"] + official["train_s"] + official["eval_s"], abs=0.05)
    for k in ("load_s", "train_s", "eval_s", "total_s"):  # the official job is its seeds' runs, summed
        assert official[k] == pytest.approx(sum(s[k] for s in job["in_process"]["official_per_seed"]))
    assert job["in_process"]["speedup"] == pytest.approx(official["total_s"] / ours["total_s"])
    p = job["processes"]
    assert p["official_s"] == pytest.approx(sum(p["official_per_seed_s"])) and len(p["official_per_seed_s"]) == 2
    assert saved["whole_job_speedup"] == pytest.approx(p["official_s"] / p["ours_s"])
    s = job["per_step"]  # per step over all seeds' 20 steps; the view encoding spread over them
    assert s["ours_s"] == pytest.approx(ours["train_s"] / 20) and s["official_s"] == pytest.approx(official["train_s"] / 20)
    assert s["ours_incl_views_s"] == pytest.approx(s["ours_s"] + ours["views_s"] / 20)
    assert saved["coop_step_speedup_incl_views"] == pytest.approx(s["official_s"] / s["ours_incl_views_s"])
    assert "| **whole job**, 2 seeds, toy_shapes (10 classes) x 2 shots, 2 epochs" in table


def test_official_step_zero_equals_ours(tmp_path):
    """On the same batch at step 0, the official formulation (the step's augmented images through the image
    encoder, all 77 tokens) gives the logits and loss that ours gives from the view cache (cut, shared prefix),
    and both equal CLIP's equation written out: exp(logit_scale) * cos(image features, text features)."""
    from coop.bench.official import StepImages, official_classifier
    from coop.data.datasets import get_dataset, image_root, read_split
    from coop.data.fewshot import make_manifest, manifest_items
    from coop.data.toyworld import generate
    from coop.models.clip import load_clip
    from coop.models.prompt import FusedCoOp, PromptLearner
    from coop.models.transforms import train_transform
    from coop.views import ViewData, train_views

    generate("toy_shapes", tmp_path, n_train=2, n_val=1, n_test=1, seed=0)
    spec = get_dataset("toy_shapes")
    split = read_split(tmp_path, spec)
    manifest = make_manifest("toy_shapes", split, 2, 1)
    items, root = manifest_items(manifest, "train"), image_root(tmp_path, spec)
    clip = load_clip("toy-rn", "toyworld")
    idx = torch.tensor([3, 0, 17, 8])
    official = official_classifier(clip, split.classnames, seed=1, n_ctx=4).train()
    data = StepImages(root, items, train_transform(clip.preprocess), manifest["hash"])
    data.set_epoch(0)
    x, y = data.batch(idx)
    logits_official = official(x)
    views = ViewData(train_views(clip, items, root, manifest["hash"], 1), [it.label for it in items])
    views.set_epoch(0)
    feats, y_views = views.batch(idx)
    torch.manual_seed(1)
    ours = FusedCoOp(clip.model, [PromptLearner(clip.model, clip.tokenizer, split.classnames, 4)])
    (loss_ours,) = ours.losses([0], [feats], [y_views])
    with torch.no_grad():  # the equation, from open_clip's own encoders
        img = F.normalize(clip.model.encode_image(x), dim=-1)
        txt = F.normalize(official.text_features(), dim=-1)
        reference = clip.model.logit_scale.exp() * img @ txt.t()
    assert torch.equal(y, y_views)
    assert torch.allclose(logits_official, reference, atol=1e-4)
    logits_ours = ours.logit_scale.exp() * F.normalize(feats, dim=-1) @ F.normalize(ours.text_features([0])[0], dim=-1).t()
    assert torch.allclose(logits_ours, reference, atol=1e-4)
    assert F.cross_entropy(logits_official, y).item() == pytest.approx(loss_ours.item(), abs=1e-5)


def test_activation_memory_is_linear_in_classes_and_smaller_when_cut():
    model, tok = load_bench_model("toy-rn")
    m = {n: activation_bytes(model, tok, n, ours=True, n_ctx=4, batch=4)["fp32"] for n in (2, 4, 6)}
    assert m[6] - m[4] == pytest.approx(m[4] - m[2], rel=0.02)  # what the 1000-class extrapolation relies on
    full = activation_bytes(model, tok, 4, ours=False, n_ctx=4, batch=4)
    assert full["fp32"] > 2 * m[4] and full["fp16"] < full["fp32"]


def test_class_names_are_distinct():
    assert len(set(class_names(1000))) == 1000

"""`coop bench` on a tiny setting: the record has the ratios the issue asks for (no timing assertions)."""
import json

import pytest

from coop.bench import BenchConfig, activation_bytes, class_names, load_bench_model, run_bench

TINY = dict(step_classes=(3, 6, 12), measured_classes=(3, 6), reps=1, official_reps=1, n_ctx=4, batch_size=4, n_test=20,
            test_batch=10, eval_classes=3, fused_classes=3, fused_shots=2, fused_epochs=2, memory_classes=(3, 6),
            memory_target=12, model="toy-rn")


def test_bench_writes_the_ratios(tmp_path):
    out = tmp_path / "bench" / "bench.json"
    lines = []
    record = run_bench(BenchConfig(**TINY), out, log=lines.append)
    saved = json.loads(out.read_text())
    for key in ("coop_step_speedup_100cls", "eval_speedup", "fused_seeds_speedup"):
        assert isinstance(saved[key], float) and saved[key] > 0, key
    assert [s["classes"] for s in saved["steps"]] == [3, 6, 12]
    assert [s["measured"] for s in saved["steps"]] == [True, True, False]
    assert all(s["official_s"] > 0 and s["ours_s"] > 0 for s in saved["steps"])
    assert saved["threads"] >= 1 and saved["device"] == "cpu" and saved["torch"]
    mem = saved["activation_memory"]
    assert mem["full77_fp32_bytes"] > mem["ours_fp32_bytes"] > mem["ours_fp16_bytes"] > 0
    assert "| CoOp step, 12 classes (scaled" in lines[-2] and record["wall_seconds"] > 0


def test_activation_memory_is_linear_in_classes_and_smaller_when_cut():
    model, tok = load_bench_model("toy-rn")
    m = {n: activation_bytes(model, tok, n, ours=True, n_ctx=4, batch=4)["fp32"] for n in (2, 4, 6)}
    assert m[6] - m[4] == pytest.approx(m[4] - m[2], rel=0.02)  # what the 1000-class extrapolation relies on
    full = activation_bytes(model, tok, 4, ours=False, n_ctx=4, batch=4)
    assert full["fp32"] > 2 * m[4] and full["fp16"] < full["fp32"]


def test_class_names_are_distinct():
    assert len(set(class_names(1000))) == 1000

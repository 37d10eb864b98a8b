"""The bench record as the Markdown table that `coop bench` prints and the README shows."""
from __future__ import annotations

from typing import Any


def format_table(r: dict[str, Any]) -> str:
    """The bench record as a Markdown table (what `coop bench` prints and the README shows)."""
    lines = ["| measurement | official | ours | speedup |", "|---|---:|---:|---:|", *whole_job_rows(r["whole_job"])]
    for s in r["steps"]:
        note = "" if s["measured"] else " (scaled from the largest measured count)"
        lines.append(f"| CoOp step, {s['classes']} classes{note} | {s['official_s']:.3f} s "
                     f"(text {s['official_text_s']:.3f} + image {s['official_image_s']:.3f}) | {s['ours_s']:.3f} s "
                     f"| {s['speedup']:.1f}x |")
    e = r["evaluation"]
    lines.append(f"| evaluation, {e['classes']} classes, {e['n_test']} test images | {e['official_s']:.2f} s "
                 f"(text only: {e['official_text_only_s']:.2f} s) | {e['ours_s']:.3f} s | {e['speedup']:.0f}x "
                 f"(text only: {e['speedup_text_only']:.0f}x) |")
    f = r["fused_seeds"]
    lines.append(f"| {f['seeds']} seeds, 10 classes x {f['shots']} shots, {f['epochs']} epochs ({f['model']}): "
                 f"`coop run` processes | {f['separate_runs_s']:.2f} s (one per seed) | {f['fused_run_s']:.2f} s "
                 f"(one, fused) | {f['speedup']:.1f}x |")
    lines.append(f"| the same runs inside one process | {f['in_process_separate_runs_s']:.3f} s (one after "
                 f"another) | {f['in_process_fused_run_s']:.3f} s (fused) | {f['in_process_speedup']:.1f}x |")
    lines.append(f"| the same, training loops only ({f['classes']} classes) | {f['loop_separate_s']:.3f} s (one after another) | "
                 f"{f['loop_fused_s']:.3f} s (fused) | {f['loop_speedup']:.1f}x |")
    v = f["variants"]
    lines.append(f"| Fig. 3's {v['variants']} CoOp variants (end/middle x unified/CSC) of that cell, {f['seeds']} seeds "
                 f"each: `coop run` processes | {v['separate_runs_s']:.2f} s (one per variant) | "
                 f"{v['fused_run_s']:.2f} s (one, `--variants`) | {v['speedup']:.1f}x |")
    m = r["activation_memory"]
    lines.append(f"| activations, {m['classes']} classes, M={m['n_ctx']} (fp32 / fp16) | {m['full77_fp32_gib']:.2f}"
                 f" / {m['full77_fp16_gib']:.2f} GiB (77 tokens) | {m['ours_fp32_gib']:.2f} / {m['ours_fp16_gib']:.2f}"
                 f" GiB (cut, shared prefix) | {m['full77_fp32_gib'] / m['ours_fp32_gib']:.1f}x |")
    lines.append(f"\n{r['model']} text encoder (random weights), {r['threads']} CPU thread(s), torch {r['torch']}, "
                 f"{r['device_name']}; medians of {r['reps']} (ours) and {r['official_reps']} (official) runs after warm-up; "
                 f"{r['wall_seconds']} s in all.")
    fair = r["whole_job"]["fairness"]
    lines.append(f"Whole job: both formulations take {fair['steps_official']} steps per seed (batch "
                 f"{r['whole_job']['batch_size']}, the same schedule, subsets, views and initialisation); test "
                 f"accuracy official {fair['accuracy_official']}, ours {fair['accuracy_ours']}; learned contexts "
                 f"differ by at most {fair['max_ctx_diff']:.1e}.")
    return "\n".join(lines)


def whole_job_rows(j: dict[str, Any]) -> list[str]:
    """The whole job's rows: as processes (what a user runs), in one process phase by phase, per step."""
    cell = (f"{j['seeds']} seeds, {j['dataset']} ({j['classes']} classes) x {j['shots']} shots, {j['epochs']} epochs, "
            f"{j['n_test']} test images ({j['model']})")
    rows = []
    if "processes" in j:
        p = j["processes"]
        rows.append(f"| **whole job**, {cell}: processes | {p['official_s']:.1f} s ({j['seeds']} runs) | "
                    f"{p['ours_s']:.1f} s (one `coop run`) | **{p['speedup']:.1f}x** |")
    o, w = j["in_process"]["official"], j["in_process"]["ours"]
    rows.append(f"| whole job inside one process | {o['total_s']:.2f} s (load {o['load_s']:.2f} + train "
                f"{o['train_s']:.2f} + eval {o['eval_s']:.2f}) | {w['total_s']:.2f} s (load {w['load_s']:.2f} + "
                f"subsets and test features {w['prepare_s']:.2f} + views {w['views_s']:.2f} + train {w['train_s']:.2f}"
                f" + finish {w['finish_s']:.2f}) | {j['in_process']['speedup']:.1f}x |")
    s = j["per_step"]
    rows.append(f"| its CoOp step, view encoding included ({j['steps_per_seed']} steps per seed) | "
                f"{s['official_s'] * 1000:.1f} ms | {s['ours_incl_views_s'] * 1000:.1f} ms (step "
                f"{s['ours_s'] * 1000:.1f} + views {s['ours_views_s'] * 1000:.1f}) | {s['speedup_incl_views']:.1f}x "
                f"(without views: {s['speedup']:.1f}x) |")
    return rows

"""`coop` command line: run | data | features | report | bench | status | list."""
from __future__ import annotations

import argparse
import json
import os
import sys

from coop.defaults import PRECISIONS
from coop.store import RESULTS


def _add_backbone(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="toy-rn", help="label used in result paths (default: toy-rn)")
    p.add_argument("--model", default=None, help="open_clip model name (default: the backbone label)")
    p.add_argument("--pretrained", default=None,
                   help="open_clip tag (e.g. openai), toyworld, a local checkpoint path, or 'random' (seeded init); "
                   "default: the backbone's (toyworld for the toy models, openai for open_clip models that have it, "
                   "a local-dir:/hf-hub: model's own)")
    p.add_argument("--init-seed", type=int, default=0, help="seed of random weights (pretrained=random)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def cmd_pretrain(a: argparse.Namespace) -> None:
    from coop.pretrain import FINGERPRINT_STEP, PretrainConfig, check_fingerprint, pretrain, save_pretrained

    if a.check:
        verdict, detail = check_fingerprint(a.check, log=lambda m: None)
        said = "DIFFER" if verdict == "DIFFER" else f"match {verdict}"
        print(f"{a.check}: weights after {FINGERPRINT_STEP} steps {said} ({detail})")
        if verdict == "DIFFER":
            raise SystemExit(1)
        return
    if not a.out:
        raise SystemExit("error: coop pretrain needs --out FILE (or --check FILE)")
    cfg = PretrainConfig(model=a.model, steps=a.steps, batch_size=a.batch_size, seed=a.seed)
    model, losses, fingerprint = pretrain(cfg)
    save_pretrained(model, a.out, cfg, losses, fingerprint)
    print(f"wrote {a.out}: {cfg.model} after {cfg.steps} steps, final loss {losses[-1]:.4f}")


def _manifest(path: str, a: argparse.Namespace, spec) -> dict:
    """A manifest `coop features --part fewshot` covers; a truncated or garbled one named like the workflow's
    (shots{K}_seed{S}.json) is sampled again in place (coop.experiment.read_or_sample_manifest)."""
    from coop.data.datasets import read_split
    from coop.data.fewshot import read_manifest
    from coop.experiment import read_or_sample_manifest
    from coop.store import manifest_fields

    fields = manifest_fields(path)
    if fields is None:
        return read_manifest(path)
    return read_or_sample_manifest(path, a.dataset, lambda: read_split(a.root, spec), *fields, log=print)


def cmd_features(a: argparse.Namespace) -> None:
    from coop.data.datasets import get_dataset, read_split
    from coop.experiment import cache_keys, compute_features, fewshot_pool
    from coop.features import save_features
    from coop.models.clip import load_clip
    from coop.provenance import default_device

    spec = get_dataset(a.dataset)
    if a.part == "fewshot":
        if not a.manifest:
            raise SystemExit("error: --part fewshot needs --manifest files")
        items = fewshot_pool([_manifest(m, a, spec) for m in a.manifest])
    else:
        items = getattr(read_split(a.root, spec), a.part)
    device = a.device or default_device()
    clip = load_clip(a.model or a.backbone, a.pretrained, device=device, init_seed=a.init_seed)
    feats = compute_features(clip, a.dataset, items, a.root, device, a.precision)
    save_features(a.out, feats, items, cache_keys(a.dataset, a.backbone, clip.name, clip.pretrained, a.part))
    print(f"wrote {a.out}: {feats.shape[0]} x {feats.shape[1]} features")


def cmd_report_table(a: argparse.Namespace) -> None:
    from coop.report.tables import aggregate

    table = aggregate(a.metrics, a.out)
    print(f"wrote {a.out}: {len(table)} rows from {len(a.metrics)} runs")


def cmd_transfer(a: argparse.Namespace) -> None:
    from coop.transfer import write_transfers

    write_transfers(a.run_dir, a.target, a.out, data_root=a.data_root, cache_dir=a.cache_dir, device=a.device)
    print(f"wrote {a.out}: {len(a.run_dir)} runs x {len(a.target)} targets")


def cmd_interpret(a: argparse.Namespace) -> None:
    from coop.interpret import write_nearest_words

    record = write_nearest_words(a.run_dir, a.out, data_root=a.data_root, k=a.k)
    print(f"wrote {a.out}: {len(record['nearest'])} context vectors")


def cmd_report_runs(a: argparse.Namespace) -> None:
    from coop.report.collect import runs_table, write

    print(f"wrote {a.out}: {len(write(runs_table(a.metrics), a.out))} runs")


def cmd_report_transfer(a: argparse.Namespace) -> None:
    from coop.report.collect import transfer_table, write

    print(f"wrote {a.out}: {len(write(transfer_table(a.files), a.out))} rows")


def _report_artefact(a: argparse.Namespace) -> None:
    """`coop report paper|figure --what NAME`: build the registered artefact NAME and write its files."""
    import json

    from coop.report.artefacts import INPUTS, get_artefact
    from coop.report.paper_output import make_artefact

    art = get_artefact(a.what)
    paths = {name: getattr(a, name, None) for name in art.inputs}
    missing = [INPUTS[n].option for n, p in paths.items() if p is None and INPUTS[n].required]
    if missing:
        raise SystemExit(f"error: coop report {art.command} --what {art.name} needs {' and '.join(missing)}")
    if art.kind == "table":
        df = make_artefact(art, paths, json.loads(a.experiment), {"csv": a.csv, "md": a.md})
        print(f"wrote {a.csv} and {a.md}: {len(df)} cells")
    else:
        make_artefact(art, paths, json.loads(a.experiment), {"png": a.png, "pdf": a.pdf, "csv": a.csv})
        print(f"wrote {a.png}")


cmd_report_paper = cmd_report_figure = _report_artefact


def cmd_report_findings(a: argparse.Namespace) -> None:
    import json

    from coop.report.findings import write_findings

    f = write_findings(a.runs, json.loads(a.setup), a.csv, a.md, a.transfer, a.tables)
    counts = f.verdict.value_counts()
    print(f"wrote {a.csv} and {a.md}: {counts.get('holds', 0)} of {len(f) - counts.get('not measured', 0)} "
          f"measured findings hold ({counts.get('not measured', 0)} not measured)")


def _add_artefact_inputs(p: argparse.ArgumentParser, kind: str) -> None:
    """--what (the registered artefacts of `kind`) and an option per input any of them reads."""
    from coop.report.artefacts import INPUTS, all_artefacts

    arts = all_artefacts(kind)
    p.add_argument("--what", required=True, choices=sorted(a.name for a in arts),
                   help="; ".join(f"{a.name}: {a.title}" for a in arts))
    p.add_argument("--experiment", required=True, help="JSON of the experiment (with paper_names)")
    for name, spec in INPUTS.items():
        users = [a.name for a in arts if name in a.inputs]
        if users:
            p.add_argument(spec.option, dest=name, nargs="*" if spec.many else None,
                           default=[] if spec.many else None, help=f"{spec.help} (read by {', '.join(users)})")


def cmd_report_fig3(a: argparse.Namespace) -> None:
    import json

    from coop.report.collect import select_experiment
    from coop.report.figures import plot_fewshot
    from coop.report.tables import read_table

    table = read_table(a.table)
    if a.experiment:
        table = select_experiment(table, json.loads(a.experiment))
    plot_fewshot(table, a.png, a.pdf, backbone=a.backbone)
    print(f"wrote {a.png}")


def cmd_bench(a: argparse.Namespace) -> None:
    import torch

    from coop.bench import QUICK, BenchConfig, run_bench

    if not a.threads:  # one thread unless asked: stable timings on a shared machine
        torch.set_num_threads(1)
    run_bench(BenchConfig(**(QUICK if a.quick else {})), a.out)


def cmd_list(a: argparse.Namespace) -> None:
    from coop.data.datasets import DATASETS
    from coop.methods.registry import all_methods

    print("datasets:", ", ".join(DATASETS))
    for m in all_methods().values():
        origin = f" [plugin {m.plugin}]" if m.plugin else ""
        print(f"method {m.name}: {m.description}{origin}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coop", description="CoOp benchmark pipeline")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all)")
    parser.add_argument("--protocol", action="append", default=[], metavar="KEY=VALUE",
                        help="restore an official behaviour (coop/protocol.py), e.g. lp_c_selection=test")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="load methods of your own: an importable module or a .py file that registers them "
                             "(README, 'Extending'); repeat for several")
    parser.add_argument("--datasets", default=None, metavar="JSON",
                        help="datasets of your own, as the config's datasets: block (a JSON mapping name -> entry; "
                             "README, 'Extending')")
    sub = parser.add_subparsers(dest="command", required=True)

    from coop.cli_run import add_subcommand as add_run

    add_run(sub, _add_backbone)  # `coop run`: coop/cli_run.py

    from coop.cli_data import add_subcommand as add_data

    add_data(sub)  # `coop data toy | sample | prepare | check`: coop/cli_data.py

    p = sub.add_parser("pretrain", help="pretrain a tiny CLIP contrastively on toy-world image-caption pairs")
    p.add_argument("--model", default="toy-rn", help="open_clip model name (e.g. toy-rn, toy-vit)")
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="the .safetensors checkpoint to write")
    p.add_argument("--check", metavar="FILE", help="instead: rerun the first steps of the pretraining that wrote "
                   "FILE and check that the weights match it bit for bit")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("features", help="cache image features of a split (test transform)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--part", default="test", choices=["train", "val", "test", "fewshot"])
    p.add_argument("--manifest", nargs="*", default=[], help="with --part fewshot: the manifests to cover")
    p.add_argument("--root", default="data")
    p.add_argument("--out", required=True)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="autocast of the image encoder on CUDA (fp32 on the CPU whatever is asked)")
    _add_backbone(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("transfer", help="evaluate finished runs on other datasets (domain shift)")
    p.add_argument("--run-dir", nargs="+", required=True, help="run folders (e.g. the seeds of one cell)")
    p.add_argument("--target", nargs="+", required=True)
    p.add_argument("--data-root", default="data")
    p.add_argument("--cache-dir", default=RESULTS)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="one JSON list with a record per run")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("interpret", help="nearest vocabulary tokens to a CoOp run's learned context")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data-root", default="data")
    p.add_argument("-k", type=int, default=3, help="nearest tokens kept per vector (the first is reported)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_interpret)

    report = sub.add_parser("report", help="tables and figures")
    rsub = report.add_subparsers(dest="report_command", required=True)
    p = rsub.add_parser("table", help="aggregate metrics.json files into the few-shot table")
    p.add_argument("--out", required=True)
    p.add_argument("metrics", nargs="+")
    p.set_defaults(func=cmd_report_table)
    p = rsub.add_parser("runs", help="one row per run, method parameters as param_* columns")
    p.add_argument("--out", required=True)
    p.add_argument("metrics", nargs="+")
    p.set_defaults(func=cmd_report_runs)
    p = rsub.add_parser("transfer", help="one row per run x target of the domain-shift evaluations")
    p.add_argument("--out", required=True)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_report_transfer)
    p = rsub.add_parser("fig3", help="plot the few-shot curves like the paper's Figure 3")
    p.add_argument("--table", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", default=None)
    p.add_argument("--backbone", default=None)
    p.add_argument("--experiment", default=None, help="JSON of the experiment whose runs to plot")
    p.set_defaults(func=cmd_report_fig3)

    p = rsub.add_parser("paper", help="one of the paper's tables, beside the paper's numbers")
    _add_artefact_inputs(p, "table")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.set_defaults(func=cmd_report_paper)
    p = rsub.add_parser("findings", help="the paper's findings checked on the runs (findings.csv and .md)")
    p.add_argument("--setup", required=True, help='JSON {"experiments": ..., "paper_names": ...} of the config')
    p.add_argument("--runs", required=True, help="runs.csv")
    p.add_argument("--transfer", default=None, help="transfer.csv (the domain-shift findings)")
    p.add_argument("--tables", nargs="*", default=[], help="the paper tables' CSVs (their reproduced numbers)")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.set_defaults(func=cmd_report_findings)
    p = rsub.add_parser("figure", help="one of the paper's figures")
    _add_artefact_inputs(p, "figure")
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", default=None)
    p.add_argument("--csv", default=None, help="also write the numbers drawn as CSV")
    p.set_defaults(func=cmd_report_figure)

    p = sub.add_parser("bench", help="time our CoOp against the official formulation (CPU, random weights)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions; 1000 classes scaled from 100; the whole job at a quarter of the epochs (a few minutes on 2 cores)")
    p.add_argument("--out", default="results/bench/bench.json", help="the JSON record to write")
    p.set_defaults(func=cmd_bench)

    from coop.status import add_subcommand

    add_subcommand(sub)  # `coop status`: its options and logic live in coop/status.py
    from coop.config_file import add_subcommand as add_check_config

    add_check_config(sub)  # `coop check-config FILE...`: coop/config_file.py

    p = sub.add_parser("list", help="known datasets and methods")
    p.set_defaults(func=cmd_list)
    return parser


def _extend(plugins: list[str], datasets: str | None) -> None:
    """Load the plugins and register the datasets of the command line (before the full parser is built, so
    that a plugin's tables and figures are among `coop report`'s choices)."""
    if plugins:
        from coop.methods.registry import load_plugins

        load_plugins(plugins)
    if datasets:
        from coop.data.datasets import DatasetError, register_datasets

        try:
            block = json.loads(datasets)
        except json.JSONDecodeError as e:
            raise DatasetError(f"--datasets is not valid JSON ({e}); give a mapping name -> entry.") from None
        register_datasets(block)


def main(argv: list[str] | None = None) -> int:
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--plugin", action="append", default=[])
    early.add_argument("--datasets", default=None)
    known, _ = early.parse_known_args(argv)
    from coop.errors import user_errors

    try:
        _extend(known.plugin, known.datasets)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    if args.threads:
        # --threads wins over OMP_NUM_THREADS/MKL_NUM_THREADS already in the environment. Set before torch is
        # imported (OpenMP and torch read them once, at import; the CLI imports torch only in the commands that
        # need it); where torch is already imported (main called in-process) it is told directly.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["MKL_NUM_THREADS"] = str(args.threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(args.threads)

    try:
        from coop.config import parse_sets
        from coop.protocol import configure

        configure(parse_sets(args.protocol))
        args.func(args)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`coop run`: one run, the seeds of a cell, or several variants of a cell trained in one job (a part of the
`coop` command line, coop/cli.py)."""
from __future__ import annotations

import argparse
import json

from coop.store import RESULTS


def cmd_run(a: argparse.Namespace) -> None:
    from coop.config import parse_sets
    from coop.experiment import run_seeds, run_variants
    from coop.models.names import canonical_pretrained

    kw = dict(dataset=a.dataset, method=a.method, shots=a.shots, backbone=a.backbone, model=a.model,
              pretrained=canonical_pretrained(a.pretrained, a.model or a.backbone), data_root=a.data_root,
              cache_dir=a.cache_dir, device=a.device, init_seed=a.init_seed, out=a.out)
    if a.variants is None:
        run_seeds(a.seed, variant=a.variant, params=parse_sets(a.set), fuse=not a.sequential, **kw)
    else:
        run_variants(_variants(a), a.seed, **kw)


def _variants(a: argparse.Namespace) -> dict:
    """The variants of `coop run --variants JSON` (several variants of the method trained in one job,
    coop.experiment.run_variants): name -> parameters."""
    clash = [flag for flag, given in (("--set", a.set), ("--variant", a.variant != "default"),
                                      ("--sequential", a.sequential)) if given]
    if clash:
        raise SystemExit(f"coop run: --variants names every variant and its parameters; drop {', '.join(clash)}.")
    try:
        variants = json.loads(a.variants)
    except json.JSONDecodeError as e:
        raise SystemExit(f"coop run: --variants is not valid JSON ({e}); give a mapping, e.g. "
                         "'{\"end\": {\"n_ctx\": 16}, \"csc\": {\"csc\": true}}'.") from None
    if not (isinstance(variants, dict) and variants and all(isinstance(p, dict) for p in variants.values())):
        raise SystemExit("coop run: --variants must be a non-empty JSON mapping of variant name -> parameters, "
                         "e.g. '{\"end\": {\"n_ctx\": 16}, \"csc\": {\"csc\": true}}'.")
    return variants


def add_subcommand(sub, add_backbone) -> None:
    """Register `coop run` on the `coop` parser's subparsers (`add_backbone`: the shared backbone options)."""
    p = sub.add_parser("run", help="one run: dataset x backbone x method x shots x seed -> metrics.json")
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="one or more seeds, trained together in this process (CoOp: fused, one text-encoder "
                        "pass for all seeds per step) or one after another")
    p.add_argument("--sequential", action="store_true",
                   help="train the seeds one after another, each alone, even where they could be fused")
    p.add_argument("--variant", default="default", help="name of this parameter set (recorded)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="method parameter")
    p.add_argument("--variants", default=None, metavar="JSON",
                   help="several variants trained in one job: a JSON mapping name -> parameters (instead of "
                        "--variant/--set; --out then holds {variant})")
    p.add_argument("--data-root", default="data")
    p.add_argument("--cache-dir", default=RESULTS, help="where manifests and feature caches live")
    p.add_argument("--out", required=True, help="output folder for metrics.json ({seed} is replaced by the seed, "
                   "{variant} by the variant)")
    add_backbone(p)
    p.set_defaults(func=cmd_run)

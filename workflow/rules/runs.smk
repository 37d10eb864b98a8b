# Runs: zero-shot methods once per dataset x backbone x variant; few-shot methods one job per dataset x
# backbone x variant x shots that trains every seed (fuse_seeds: CLIP loaded once, the method's train gets all
# seeds), or one job per seed; and evaluations of finished runs (transfer, nearest words).
# (After checks.smk: the plugins' methods are registered by then.)
ZERO_SHOT_METHODS = [m for m in config["methods"] if not get_method(m).few_shot]
FEW_SHOT_METHODS = [m for m in config["methods"] if get_method(m).few_shot]
# fuse_variants: (dataset, backbone, method, variant, shots) -> the variants one job trains together
# (coop.sweep.fused_variants); their run files are made by the run_variants_* rules below, not run_fewshot.
FUSED = sweep.fused_variants(config, SIZES)
FUSED_JOBS = {}  # (method, variants) -> the cells (coop.store.cell_from_dataset) of that rule
for (_d, _b, _m, _v, _s), _group in FUSED.items():
    FUSED_JOBS.setdefault((_m, _group), []).append(store.cell_from_dataset(_d, _b, _m, _v, _s))


rule run_zeroshot:
    input:
        unpack(run_inputs),
    output:
        run_pattern(shots=0, seed=0),
    params:
        backbone=backbone_args,
        method=method_args,
        root=DATA_ROOT,
        out=run_out,
        code_version=CODE_VERSION,
        coop=coop_args,
    wildcard_constraints:
        method=_alternatives(ZERO_SHOT_METHODS),
    threads: THREADS
    resources:
        **RUN_RESOURCES,
    group:
        run_group
    conda:
        "../envs/torch.yml"
    log:
        run_log(0),
    benchmark:
        "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots0.tsv"
    shell:
        "coop --threads {threads} {params.coop} run --dataset {wildcards.dataset} "
        "--method {wildcards.method} --variant {wildcards.variant} --shots 0 --seed 0 "
        "{params.method} {params.backbone} --data-root {params.root} --cache-dir results "
        "--out '{params.out}' > {log} 2>&1"


# fuse_seeds (default): one job trains every seed of a cell, paying the job's fixed cost once (and CoOp and
# the text heads share each step's text-encoder pass). Without it, one job per seed: more parallel jobs.
rule run_fewshot:
    input:
        unpack(run_inputs),
    output:
        fewshot_outputs(),
    params:
        backbone=backbone_args,
        method=method_args,
        root=DATA_ROOT,
        seeds=lambda w: " ".join(map(str, job_seeds(w))),
        out=run_out,
        code_version=CODE_VERSION,
        coop=coop_args,
    wildcard_constraints:
        method=_alternatives(FEW_SHOT_METHODS),
        shots=r"[1-9]\d*",
        dataset=cells_constraint(SPLIT_CELLS + [c for cells in FUSED_JOBS.values() for c in cells], inside=False),
    threads: THREADS
    resources:
        **RUN_RESOURCES,
    group:
        run_group
    conda:
        "../envs/torch.yml"
    log:
        run_log("{shots}", None if FUSE_SEEDS else "{seed}"),
    benchmark:
        "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}"
        + ("" if FUSE_SEEDS else "_seed{seed}") + ".tsv"
    shell:
        "coop --threads {threads} {params.coop} run --dataset {wildcards.dataset} "
        "--method {wildcards.method} --variant {wildcards.variant} --shots {wildcards.shots} "
        "--seed {params.seeds} {params.method} {params.backbone} --data-root {params.root} "
        "--cache-dir results --out '{params.out}' > {log} 2>&1"


# A fused cell whose job would exceed cluster.max_runtime trains one seed per job instead (SPLIT_CELLS,
# common.smk): the same command and result paths, one job per seed.
if FUSE_SEEDS and SPLIT_CELLS:

    use rule run_fewshot as run_fewshot_seed with:
        output:
            run_pattern(),
        params:
            backbone=backbone_args,
            method=method_args,
            root=DATA_ROOT,
            seeds=lambda w: w.seed,
            out=run_out,
            code_version=CODE_VERSION,
            coop=coop_args,
        wildcard_constraints:
            method=_alternatives(FEW_SHOT_METHODS),
            shots=r"[1-9]\d*",
            dataset=split_cells_constraint(inside=True),
        log:
            "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
        benchmark:
            "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"


# fuse_variants: one job per set of variants that train together (CoOp: the same schedule and optimiser) in a
# dataset x backbone x shots cell, every seed of each: `coop run --variants`, the same result paths. Its log is
# its first variant's; the other variants' log paths link to it.
for (_method, _variants), _cells in sorted(FUSED_JOBS.items()):

    rule:
        name:
            sweep.fused_rule(_method, _variants)
        input:
            unpack(lambda w, m=_method, v=_variants[0]: run_inputs(_as_variant(w, m, v))),
        output:
            [run_pattern(method=_method, variant=v, seed=s) for v in _variants for s in SEEDS],
        params:
            backbone=backbone_args,
            variants=_cli([json.dumps({v: config["methods"][_method][v] or {} for v in _variants})]),
            root=DATA_ROOT,
            seeds=" ".join(map(str, SEEDS)),
            out=lambda w, m=_method: store.run_dir(R, w.dataset, w.backbone, m, "{variant}", w.shots, "{seed}"),
            links=lambda w, m=_method, vs=_variants: _log_links(m, vs).format(**dict(w.items())),
            code_version=CODE_VERSION,
            coop=lambda w, m=_method, v=_variants[0]: coop_args(_as_variant(w, m, v)),
        wildcard_constraints:
            shots=r"[1-9]\d*",
            dataset=cells_constraint(_cells, inside=True),
        threads: THREADS
        resources:
            **gpu_resources(lambda w, m=_method, vs=_variants: SIZES.variants(w.dataset, w.backbone, m, vs,
                                                                              int(w.shots))),
        group:
            lambda w, m=_method, v=_variants[0]: run_group(_as_variant(w, m, v))
        conda:
            "../envs/torch.yml"
        log:
            [sweep.run_log(R, "{dataset}", "{backbone}", _method, v, "{shots}") for v in _variants],
        benchmark:
            f"results/benchmarks/runs/{{dataset}}/{{backbone}}/{_method}/{_variants[0]}/shots{{shots}}.tsv"
        shell:
            "{params.links}coop --threads {threads} {params.coop} run --dataset {wildcards.dataset} "
            f"--method {_method} --variants {{params.variants}} --shots {{wildcards.shots}} "
            "--seed {params.seeds} {params.backbone} --data-root {params.root} "
            "--cache-dir results --out '{params.out}' > {log[0]} 2>&1"


rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        store.transfer_path(R, "{dataset}", "{backbone}", "{method}", "{variant}", "{shots}"),
    params:
        targets=transfer_targets,
        runs=cell_runs,
        root=DATA_ROOT,
        code_version=CODE_VERSION,
        coop=lambda w: coop_args(w, datasets=transfer_targets(w)),
    threads: THREADS
    resources:
        **TRANSFER_RESOURCES,
    conda:
        "../envs/torch.yml"
    log:
        "results/logs/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.log",
    benchmark:
        "results/benchmarks/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.tsv"
    shell:
        "coop --threads {threads} {params.coop} transfer --run-dir {params.runs} "
        "--target {params.targets} --data-root {params.root} --cache-dir results --out {output} > {log} 2>&1"


rule nearest_words:
    input:
        run_pattern(),
    output:
        run_pattern("nearest_words.json"),
    params:
        root=DATA_ROOT,
        run_dir=subpath(input[0], parent=True),
        code_version=CODE_VERSION,
        coop=coop_args,
    threads: THREADS
    resources:
        **INTERPRET_RESOURCES,
    conda:
        "../envs/torch.yml"
    log:
        "results/logs/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} {params.coop} interpret --run-dir {params.run_dir} --data-root {params.root} "
        "--out {output} > {log} 2>&1"

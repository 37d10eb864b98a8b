# Runs: zero-shot methods once per dataset x backbone x variant; few-shot methods one job per dataset x
# backbone x variant x shots that trains every seed (CLIP loaded once; CoOp and the text heads fuse them), and evaluations of runs.


rule run_zeroshot:
    input:
        unpack(run_inputs),
    output:
        "results/runs/{dataset}/{backbone}/{method}/{variant}/shots0/seed0/metrics.json",
    params:
        backbone=backbone_args,
        method=method_args,
        root=DATA_ROOT,
        out=subpath(output[0], parent=True),
        code_version=CODE_VERSION,
        protocol=PROTOCOL,
    wildcard_constraints:
        method=_alternatives(ZERO_SHOT_METHODS),
    threads: THREADS
    resources:
        gpu=1,
        cpus_per_task=lambda wildcards, threads: threads,
        mem_mb=gpu_mem_mb,
        runtime=gpu_runtime(15),
    group:
        "zeroshot"
    conda:
        "../../environment.yml"
    log:
        "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots0.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots0.tsv"
    shell:
        "coop --threads {threads} {params.protocol} run --dataset {wildcards.dataset} "
        "--method {wildcards.method} --variant {wildcards.variant} --shots 0 --seed 0 "
        "{params.method} {params.backbone} --data-root {params.root} --cache-dir results "
        "--out {params.out} > {log} 2>&1"


# fuse_seeds (default): one job trains every seed of a cell (fused where the method can), paying the job's fixed cost once.
# Without it, one job per seed: more parallel jobs, e.g. one GPU each on a cluster.
if FUSE_SEEDS:

    rule run_fewshot:
        input:
            unpack(run_inputs),
        output:
            expand(
                "results/runs/{{dataset}}/{{backbone}}/{{method}}/{{variant}}/shots{{shots}}/seed{seed}/metrics.json",
                seed=SEEDS,
            ),
        params:
            backbone=backbone_args,
            method=method_args,
            root=DATA_ROOT,
            seeds=" ".join(map(str, SEEDS)),
            out=lambda w: f"results/runs/{w.dataset}/{w.backbone}/{w.method}/{w.variant}/shots{w.shots}/seed{{seed}}",
            code_version=CODE_VERSION,
            protocol=PROTOCOL,
        wildcard_constraints:
            method=_alternatives(FEW_SHOT_METHODS),
            shots=r"[1-9]\d*",
        threads: THREADS
        resources:
            gpu=1,
            cpus_per_task=lambda wildcards, threads: threads,
            mem_mb=gpu_mem_mb,
            runtime=gpu_runtime(training_minutes),
        group:
            run_group
        conda:
            "../../environment.yml"
        log:
            "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}.log",
        benchmark:
            "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}.tsv"
        shell:
            "coop --threads {threads} {params.protocol} run --dataset {wildcards.dataset} "
            "--method {wildcards.method} --variant {wildcards.variant} --shots {wildcards.shots} "
            "--seed {params.seeds} {params.method} {params.backbone} --data-root {params.root} "
            "--cache-dir results --out '{params.out}' > {log} 2>&1"

else:

    rule run_fewshot:
        input:
            unpack(run_inputs),
        output:
            "results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}/metrics.json",
        params:
            backbone=backbone_args,
            method=method_args,
            root=DATA_ROOT,
            out=subpath(output[0], parent=True),
            code_version=CODE_VERSION,
            protocol=PROTOCOL,
        wildcard_constraints:
            method=_alternatives(FEW_SHOT_METHODS),
            shots=r"[1-9]\d*",
        threads: THREADS
        resources:
            gpu=1,
            cpus_per_task=lambda wildcards, threads: threads,
            mem_mb=gpu_mem_mb,
            runtime=gpu_runtime(training_minutes),
        group:
            run_group
        conda:
            "../../environment.yml"
        log:
            "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
        benchmark:
            "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
        shell:
            "coop --threads {threads} {params.protocol} run --dataset {wildcards.dataset} "
            "--method {wildcards.method} --variant {wildcards.variant} --shots {wildcards.shots} "
            "--seed {wildcards.seed} {params.method} {params.backbone} --data-root {params.root} "
            "--cache-dir results --out {params.out} > {log} 2>&1"


rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        "results/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.json",
    params:
        targets=transfer_targets,
        runs=cell_runs,
        root=DATA_ROOT,
        code_version=CODE_VERSION,
        protocol=PROTOCOL,
    threads: THREADS
    resources:
        gpu=1,
        cpus_per_task=lambda wildcards, threads: threads,
        mem_mb=gpu_mem_mb,
        runtime=gpu_runtime(30),
    conda:
        "../../environment.yml"
    log:
        "results/logs/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.log",
    benchmark:
        "results/benchmarks/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.tsv"
    shell:
        "coop --threads {threads} {params.protocol} transfer --run-dir {params.runs} "
        "--target {params.targets} --data-root {params.root} --cache-dir results --out {output} > {log} 2>&1"


rule nearest_words:
    input:
        "results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}/metrics.json",
    output:
        "results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}/nearest_words.json",
    params:
        root=DATA_ROOT,
        run_dir=subpath(input[0], parent=True),
        code_version=CODE_VERSION,
        protocol=PROTOCOL,
    threads: THREADS
    resources:
        gpu=1,
        cpus_per_task=lambda wildcards, threads: threads,
        mem_mb=gpu_mem_mb,
        runtime=gpu_runtime(15),
    conda:
        "../../environment.yml"
    log:
        "results/logs/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} {params.protocol} interpret --run-dir {params.run_dir} --data-root {params.root} "
        "--out {output} > {log} 2>&1"

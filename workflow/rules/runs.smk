# One job per dataset x backbone x method variant x shots x seed, and the evaluations of finished runs.


rule run:
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
    threads: THREADS
    conda:
        "../../environment.yml"
    log:
        "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} {params.protocol} run --dataset {wildcards.dataset} --method {wildcards.method} "
        "--variant {wildcards.variant} --shots {wildcards.shots} --seed {wildcards.seed} "
        "{params.method} {params.backbone} --data-root {params.root} --cache-dir results "
        "--out {params.out} > {log} 2>&1"


rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        "results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}/transfer.json",
    params:
        targets=transfer_targets,
        root=DATA_ROOT,
        run_dir=subpath(output[0], parent=True),
        code_version=CODE_VERSION,
        protocol=PROTOCOL,
    threads: THREADS
    conda:
        "../../environment.yml"
    log:
        "results/logs/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} {params.protocol} transfer --run-dir {params.run_dir} --target {params.targets} "
        "--data-root {params.root} --cache-dir results --out {output} > {log} 2>&1"


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
    conda:
        "../../environment.yml"
    log:
        "results/logs/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/nearest_words/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} {params.protocol} interpret --run-dir {params.run_dir} --data-root {params.root} "
        "--out {output} > {log} 2>&1"

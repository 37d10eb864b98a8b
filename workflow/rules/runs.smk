# One job per dataset x backbone x method variant x shots x seed.


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
    threads: THREADS
    conda:
        "../../environment.yml"
    log:
        "results/logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}_seed{seed}.tsv"
    shell:
        "coop --threads {threads} run --dataset {wildcards.dataset} --method {wildcards.method} "
        "--variant {wildcards.variant} --shots {wildcards.shots} --seed {wildcards.seed} "
        "{params.method} {params.backbone} --data-root {params.root} --cache-dir results "
        "--out {params.out} > {log} 2>&1"

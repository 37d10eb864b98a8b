# Image features (test transform) computed once per dataset x backbone and shared by every method.


rule test_features:
    input:
        split=split_file,
        weights=backbone_weights,
    output:
        "results/features/{dataset}/{backbone}/test.safetensors",
    params:
        backbone=backbone_args,
        root=DATA_ROOT,
        code_version=CODE_VERSION,
        coop=coop_args,
    threads: THREADS
    resources:
        **TEST_FEATURE_RESOURCES,
    group:
        "features"
    conda:
        "../envs/torch.yml"
    log:
        "results/logs/features/{dataset}/{backbone}/test.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{backbone}/test.tsv"
    shell:
        "coop --threads {threads} {params.coop} features --dataset {wildcards.dataset} --part test --root {params.root} "
        "{params.backbone} --out {output} > {log} 2>&1"


rule fewshot_features:
    input:
        split=split_file,
        manifests=all_manifests,
        weights=backbone_weights,
    output:
        "results/features/{dataset}/{backbone}/fewshot.safetensors",
    params:
        backbone=backbone_args,
        root=DATA_ROOT,
        code_version=CODE_VERSION,
        coop=coop_args,
    threads: THREADS
    resources:
        **FEWSHOT_FEATURE_RESOURCES,
    group:
        "features"
    conda:
        "../envs/torch.yml"
    log:
        "results/logs/features/{dataset}/{backbone}/fewshot.log",
    benchmark:
        "results/benchmarks/features/{dataset}/{backbone}/fewshot.tsv"
    shell:
        "coop --threads {threads} {params.coop} features --dataset {wildcards.dataset} --part fewshot "
        "--manifest {input.manifests} --root {params.root} {params.backbone} --out {output} > {log} 2>&1"

# Datasets on disk and the few-shot subsets that every method shares.


rule toy_dataset:
    output:
        os.path.join(DATA_ROOT, "{dataset}", zhou_split_file("{split_name}")),
    params:
        toy=given_args(TOY, TOY_FLAGS),
        root=subpath(output[0], ancestor=2),
    conda:
        "../envs/local.yml"
    log:
        "results/logs/toy_dataset/{dataset}_{split_name}.log",
    benchmark:
        "results/benchmarks/toy_dataset/{dataset}_{split_name}.tsv"
    wildcard_constraints:
        dataset="toy_[a-z0-9_]+",
    localrule: True
    shell:
        "coop data toy --dataset {wildcards.dataset} --root {params.root} {params.toy} > {log} 2>&1"


rule fewshot_manifest:
    input:
        split_file,
    output:
        manifest("{dataset}", "{shots}", "{seed}"),
    params:
        root=DATA_ROOT,
        coop=coop_args,
    conda:
        "../envs/local.yml"
    log:
        "results/logs/fewshot/{dataset}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/fewshot/{dataset}/shots{shots}_seed{seed}.tsv"
    localrule: True
    shell:
        "coop {params.coop} data sample --dataset {wildcards.dataset} --shots {wildcards.shots} "
        "--seed {wildcards.seed} --root {params.root} --out {output} > {log} 2>&1"


# Real datasets: a missing one is downloaded where its licence allows, else the job stops with instructions
# (`coop data prepare`); an existing one is used as it is. One rule per dataset the config uses.
for _dataset in sorted(d for d in all_datasets() if not get_dataset(d).toy and not get_dataset(d).configured):

    rule:
        name:
            f"prepare_{_dataset}"
        output:
            str(split_path(DATA_ROOT, get_dataset(_dataset))),
        params:
            dataset=_dataset,
            root=subpath(output[0], ancestor=2),
        conda:
            "../envs/local.yml"
        log:
            f"results/logs/prepare/{_dataset}.log",
        benchmark:
            f"results/benchmarks/prepare/{_dataset}.tsv"
        localrule: True
        shell:
            "coop data prepare {params.dataset} --root {params.root} > {log} 2>&1"

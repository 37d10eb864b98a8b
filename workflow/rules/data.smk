# Datasets on disk and the few-shot subsets that every method shares.


rule toy_dataset:
    output:
        f"{DATA_ROOT}/{{dataset}}/split_zhou_{{split_name}}.json",
    params:
        n_train=TOY.get("n_train", 24),
        n_val=TOY.get("n_val", 8),
        n_test=TOY.get("n_test", 40),
        image_size=TOY.get("image_size", 32),
        seed=TOY.get("seed", 0),
        root=subpath(output[0], ancestor=2),
    conda:
        "../../environment.yml"
    log:
        "results/logs/toy_dataset/{dataset}_{split_name}.log",
    benchmark:
        "results/benchmarks/toy_dataset/{dataset}_{split_name}.tsv"
    wildcard_constraints:
        dataset="toy_[a-z0-9_]+",
    localrule: True
    shell:
        "coop data toy --dataset {wildcards.dataset} --root {params.root} --n-train {params.n_train} "
        "--n-val {params.n_val} --n-test {params.n_test} --image-size {params.image_size} "
        "--seed {params.seed} > {log} 2>&1"


rule fewshot_manifest:
    input:
        split_file,
    output:
        "results/fewshot/{dataset}/shots{shots}_seed{seed}.json",
    params:
        root=DATA_ROOT,
        protocol=PROTOCOL,
    conda:
        "../../environment.yml"
    log:
        "results/logs/fewshot/{dataset}/shots{shots}_seed{seed}.log",
    benchmark:
        "results/benchmarks/fewshot/{dataset}/shots{shots}_seed{seed}.tsv"
    localrule: True
    shell:
        "coop {params.protocol} data sample --dataset {wildcards.dataset} --shots {wildcards.shots} "
        "--seed {wildcards.seed} --root {params.root} --out {output} > {log} 2>&1"


# Real datasets: a missing one is downloaded where its licence allows, else the job stops with instructions
# (`coop data prepare`); an existing one is used as it is. One rule per dataset the config uses.
for _dataset in sorted(d for d in all_datasets() if not get_dataset(d).toy):

    rule:
        name:
            f"prepare_{_dataset}"
        output:
            str(split_path(DATA_ROOT, get_dataset(_dataset))),
        params:
            dataset=_dataset,
            root=subpath(output[0], ancestor=2),
        conda:
            "../../environment.yml"
        log:
            f"results/logs/prepare/{_dataset}.log",
        benchmark:
            f"results/benchmarks/prepare/{_dataset}.tsv"
        localrule: True
        shell:
            "coop data prepare {params.dataset} --root {params.root} > {log} 2>&1"

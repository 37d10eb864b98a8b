# Contrastive pretraining of the toy world's tiny CLIPs (coop pretrain). By default the backbones' "toyworld"
# tag loads the weights shipped in coop/models/pretrained/, which this rule made with the settings of
# `pretraining:` (bit for bit on the same CPU family and torch build); with pretraining.source "workflow"
# the run pretrains its own and uses them.


rule pretrain:
    output:
        pretrained_weights("{model}"),
    params:
        settings=lambda w: given_args(PRETRAINING["models"][w.model],
                                      {"steps": "--steps", "batch_size": "--batch-size", "seed": "--seed"}),
        code_version=CODE_VERSION,
    wildcard_constraints:
        model=_alternatives(PRETRAINING.get("models", {})),
    threads: PRETRAINING["threads"]
    resources:
        cpus_per_task=lambda wildcards, threads: threads,
        mem_mb=4000,
        runtime=lambda w, attempt: int(5 + PRETRAINING["models"][w.model]["steps"] / 30) * attempt,
    conda:
        "../envs/torch.yml"
    log:
        "results/logs/pretrain/{model}.log",
    benchmark:
        "results/benchmarks/pretrain/{model}.tsv"
    shell:
        "coop --threads {threads} pretrain --model {wildcards.model} {params.settings} --out {output} > {log} 2>&1"

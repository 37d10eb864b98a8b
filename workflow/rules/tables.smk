# Aggregation: every run into runs.csv and the few-shot table; the paper's tables beside its numbers.


rule runs_table:
    input:
        runs_of(),
    output:
        "results/tables/runs.csv",
    params:
        coop=report_args,
    conda:
        "../envs/local.yml"
    log:
        "results/logs/tables/runs.log",
    benchmark:
        "results/benchmarks/tables/runs.tsv"
    localrule: True
    shell:
        "coop {params.coop} report runs --out {output} {input} > {log} 2>&1"


rule fewshot_table:
    input:
        runs_of(),
    output:
        report("results/tables/fewshot.csv", caption="../report/fewshot_table.rst", category="Tables"),
    params:
        coop=report_args,
    conda:
        "../envs/local.yml"
    log:
        "results/logs/tables/fewshot.log",
    benchmark:
        "results/benchmarks/tables/fewshot.tsv"
    localrule: True
    shell:
        "coop {params.coop} report table --out {output} {input} > {log} 2>&1"


rule transfer_table:
    input:
        transfers(),
    output:
        "results/tables/transfer.csv",
    params:
        coop=report_args,
    conda:
        "../envs/local.yml"
    log:
        "results/logs/tables/transfer.log",
    benchmark:
        "results/benchmarks/tables/transfer.tsv"
    localrule: True
    shell:
        "coop {params.coop} report transfer --out {output} {input} > {log} 2>&1"


# One rule per table of the paper that the config's experiments ask for (coop.report.artefacts: its inputs,
# caption and builder).
for _artefact in paper_artefacts("table"):

    rule:
        name:
            _artefact.name
        input:
            **artefact_inputs(_artefact),
        output:
            csv=report(_artefact.outputs["csv"], caption=str(_artefact.caption_path), category="Tables"),
            md=_artefact.outputs["md"],
        params:
            what=_artefact.name,
            experiment=experiment_json(_artefact.experiment),
            inputs=artefact_args(_artefact),
            coop=report_args,
        conda:
            "../envs/local.yml"
        log:
            f"results/logs/tables/{_artefact.name}.log",
        benchmark:
            f"results/benchmarks/tables/{_artefact.name}.tsv"
        localrule: True
        shell:
            "coop {params.coop} report paper --what {params.what} --experiment {params.experiment} {params.inputs} "
            "--csv {output.csv} --md {output.md} > {log} 2>&1"

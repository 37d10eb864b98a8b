# Aggregation: every run into runs.csv and the few-shot table; the paper's tables beside its numbers.


rule runs_table:
    input:
        runs_of(),
    output:
        "results/tables/runs.csv",
    conda:
        "../../environment.yml"
    log:
        "results/logs/tables/runs.log",
    benchmark:
        "results/benchmarks/tables/runs.tsv"
    localrule: True
    shell:
        "coop report runs --out {output} {input} > {log} 2>&1"


rule fewshot_table:
    input:
        runs_of(),
    output:
        report("results/tables/fewshot.csv", caption="../report/fewshot_table.rst", category="Tables"),
    conda:
        "../../environment.yml"
    log:
        "results/logs/tables/fewshot.log",
    benchmark:
        "results/benchmarks/tables/fewshot.tsv"
    localrule: True
    shell:
        "coop report table --out {output} {input} > {log} 2>&1"


rule transfer_table:
    input:
        transfers(),
    output:
        "results/tables/transfer.csv",
    conda:
        "../../environment.yml"
    log:
        "results/logs/tables/transfer.log",
    benchmark:
        "results/benchmarks/tables/transfer.tsv"
    localrule: True
    shell:
        "coop report transfer --out {output} {input} > {log} 2>&1"


# One rule per table of the paper that the config's experiments ask for (each with its own caption).
for _table, _experiment in PAPER_TABLES.items():

    rule:
        name:
            _table
        input:
            **paper_table_inputs(_experiment),
        output:
            csv=report(f"results/tables/{_table}.csv", caption=f"../report/{_table}.rst", category="Tables"),
            md=f"results/tables/{_table}.md",
        params:
            what=_table,
            experiment=experiment_json(_experiment),
            extra=paper_table_args(_experiment),
        conda:
            "../../environment.yml"
        log:
            f"results/logs/tables/{_table}.log",
        benchmark:
            f"results/benchmarks/tables/{_table}.tsv"
        localrule: True
        shell:
            "coop report paper --what {params.what} --experiment {params.experiment} --runs {input.runs} "
            "{params.extra} --csv {output.csv} --md {output.md} > {log} 2>&1"

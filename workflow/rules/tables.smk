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


rule paper_table:
    input:
        unpack(paper_table_inputs),
    output:
        csv=report("results/tables/{table}.csv", caption="../report/{table}.rst", category="Tables"),
        md="results/tables/{table}.md",
    params:
        experiment=lambda wildcards: experiment_json(PAPER_TABLES[wildcards.table]),
        nearest=lambda wildcards, input: shlex.join(["--nearest", *input.nearest]) if input.get("nearest") else "",
        transfer=lambda wildcards, input: f"--transfer {input.transfer}" if input.get("transfer") else "",
    wildcard_constraints:
        table=_alternatives(PAPER_TABLES),
    conda:
        "../../environment.yml"
    log:
        "results/logs/tables/{table}.log",
    benchmark:
        "results/benchmarks/tables/{table}.tsv"
    localrule: True
    shell:
        "coop report paper --what {wildcards.table} --experiment {params.experiment} --runs {input.runs} "
        "{params.transfer} {params.nearest} --csv {output.csv} --md {output.md} > {log} 2>&1"

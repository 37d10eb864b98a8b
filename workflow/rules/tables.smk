# Aggregation of every run into the few-shot table.


rule fewshot_table:
    input:
        all_runs(),
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

# The paper's figures, drawn from the tables.


rule fig3_fewshot:
    input:
        "results/tables/fewshot.csv",
    output:
        png=report("figures/fig3_fewshot.png", caption="../report/fig3_fewshot.rst", category="Figures"),
        pdf="figures/fig3_fewshot.pdf",
    conda:
        "../../environment.yml"
    log:
        "results/logs/figures/fig3_fewshot.log",
    benchmark:
        "results/benchmarks/figures/fig3_fewshot.tsv"
    localrule: True
    shell:
        "coop report fig3 --table {input} --png {output.png} --pdf {output.pdf} > {log} 2>&1"

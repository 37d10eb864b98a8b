# The paper's figures, drawn from the tables.


rule fig3_fewshot:
    input:
        "results/tables/fewshot.csv",
    output:
        png=report("figures/fig3_fewshot.png", caption="../report/fig3_fewshot.rst", category="Figures"),
        pdf="figures/fig3_fewshot.pdf",
    params:
        experiment=experiment_json("fewshot") if "fewshot" in EXPERIMENTS else "",
    conda:
        "../../environment.yml"
    log:
        "results/logs/figures/fig3_fewshot.log",
    benchmark:
        "results/benchmarks/figures/fig3_fewshot.tsv"
    localrule: True
    shell:
        "coop report fig3 --table {input} --experiment {params.experiment} --png {output.png} "
        "--pdf {output.pdf} > {log} 2>&1"


rule paper_figure:
    input:
        "results/tables/runs.csv",
    output:
        png=report("figures/{figure}.png", caption="../report/{figure}.rst", category="Figures"),
        pdf="figures/{figure}.pdf",
    params:
        experiment=lambda wildcards: experiment_json(PAPER_FIGURES[wildcards.figure]),
    wildcard_constraints:
        figure=_alternatives(PAPER_FIGURES),
    conda:
        "../../environment.yml"
    log:
        "results/logs/figures/{figure}.log",
    benchmark:
        "results/benchmarks/figures/{figure}.tsv"
    localrule: True
    shell:
        "coop report figure --what {wildcards.figure} --experiment {params.experiment} --runs {input} "
        "--png {output.png} --pdf {output.pdf} > {log} 2>&1"

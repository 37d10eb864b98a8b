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


# One rule per figure of the paper that the config's experiments ask for (each with its own caption).
for _figure, _experiment in PAPER_FIGURES.items():

    rule:
        name:
            _figure
        input:
            "results/tables/runs.csv",
        output:
            png=report(f"figures/{_figure}.png", caption=f"../report/{_figure}.rst", category="Figures"),
            pdf=f"figures/{_figure}.pdf",
        params:
            what=_figure,
            experiment=experiment_json(_experiment),
        conda:
            "../../environment.yml"
        log:
            f"results/logs/figures/{_figure}.log",
        benchmark:
            f"results/benchmarks/figures/{_figure}.tsv"
        localrule: True
        shell:
            "coop report figure --what {params.what} --experiment {params.experiment} --runs {input} "
            "--png {output.png} --pdf {output.pdf} > {log} 2>&1"

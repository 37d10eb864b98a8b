# The paper's figures that the config's experiments ask for, one rule each (coop.report.artefacts: its inputs,
# caption and builder), drawn from the tables.


for _artefact in paper_artefacts("figure"):

    rule:
        name:
            _artefact.name
        input:
            **artefact_inputs(_artefact),
        output:
            png=report(_artefact.outputs["png"], caption=str(_artefact.caption_path), category="Figures"),
            pdf=_artefact.outputs["pdf"],
        params:
            what=_artefact.name,
            experiment=experiment_json(_artefact.experiment),
            inputs=artefact_args(_artefact),
            coop=report_args,
        conda:
            "../envs/local.yml"
        log:
            f"results/logs/figures/{_artefact.name}.log",
        benchmark:
            f"results/benchmarks/figures/{_artefact.name}.tsv"
        localrule: True
        shell:
            "coop {params.coop} report figure --what {params.what} --experiment {params.experiment} "
            "{params.inputs} --png {output.png} --pdf {output.pdf} > {log} 2>&1"

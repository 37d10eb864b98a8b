# Aggregation: every run into runs.csv and the few-shot table; the paper's tables beside its numbers.
import sys

from coop.metrics_check import IDENTITY, set_aside_bad


# Every run's metrics.json is checked when the workflow starts (coop.metrics_check: one JSON parse each): a bad
# one (not JSON, a key missing or of the wrong type, another run's record) is moved aside as metrics.json.bad and
# named in one line; being missing, its run is done again (final_outputs() asks for every run) before the tables
# read it. Not in cluster jobs, which parse this file too.
if workflow.is_main_process:
    _runs = {run_file(*c): dict(zip(IDENTITY, c)) for e in EXPERIMENTS.values() for c in experiment_cells(e)}
    for _path, _problem, _aside in set_aside_bad(_runs):
        print(f"note: {_path}: {_problem}; moved it to {_aside.name} beside it, and its run is done again",
              file=sys.stderr)


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


# The paper's findings checked on every run of the config (coop.report.findings): findings.csv and findings.md.
rule findings:
    input:
        runs="results/tables/runs.csv",
        transfer=findings_transfer(),
        tables=[a.outputs["csv"] for a in paper_artefacts("table")],
    output:
        csv=report("results/tables/findings.csv", caption="../report/findings.rst", category="Findings"),
        md="results/tables/findings.md",
    params:
        setup=setup_json(),
        transfer=_cli(["--transfer", *findings_transfer()]) if findings_transfer() else "",
        coop=report_args,
    conda:
        "../envs/local.yml"
    log:
        "results/logs/tables/findings.log",
    benchmark:
        "results/benchmarks/tables/findings.tsv"
    localrule: True
    shell:
        "coop {params.coop} report findings --setup {params.setup} --runs {input.runs} {params.transfer} "
        "--tables {input.tables} --csv {output.csv} --md {output.md} > {log} 2>&1"

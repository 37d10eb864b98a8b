# coop-bench: config -> toy/real datasets -> few-shot manifests -> feature caches -> runs -> tables -> figures.
from snakemake.utils import min_version, validate

min_version("9.0")


# The built-in default, unless --configfile gives another (configs are merged key by key, which would mix
# the default's experiments into another config's). --config key=value still applies on top of either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        final_outputs(),
    default_target: True

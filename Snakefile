# coop-bench: config -> toy/real datasets -> few-shot manifests -> feature caches -> runs -> tables -> figures.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from coop.config_file import ConfigFileError, read_config, schema_message, stop

min_version("9.0")


# The built-in default, unless --configfile gives another (configs are merged key by key, which would mix
# the default's experiments into another config's). --config key=value still applies on top of either.
# A YAML error in it names its line (coop.config_file; Snakemake's own message does not).
if not workflow.overwrite_configfiles:
    try:
        read_config("config/config.yaml")
    except ConfigFileError as e:
        stop(e)

    configfile: "config/config.yaml"


try:
    validate(config, "workflow/schemas/config.schema.yaml")
except WorkflowError as e:  # raised while handling jsonschema's error: the key and the problem, in one line
    stop(schema_message(e.__context__) if hasattr(e.__context__, "absolute_path") else e)


include: "workflow/rules/common.smk"
include: "workflow/rules/checks.smk"
include: "workflow/rules/slurm.smk"
include: "workflow/rules/resources.smk"
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

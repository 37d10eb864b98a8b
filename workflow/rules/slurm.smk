# SLURM job states that snakemake-executor-plugin-slurm 2.8.0 misreads (coop/slurm_states.py): a job cancelled
# with scancel ("CANCELLED by <uid>" in sacct), or preempted and not requeued, would be waited for forever. The
# driver's status query is wrapped so that its answer reads as a failure there (Snakemake retries the job,
# profile `retries`); a job that SLURM requeued stays running. Only in the driver, and only when the plugin is
# loaded (the slurm executor); nothing happens on a local run.
import sys

from coop.slurm_states import wrap_status_query

_slurm_plugin = sys.modules.get("snakemake_executor_plugin_slurm")
if workflow.is_main_process and hasattr(_slurm_plugin, "query_job_status"):
    _slurm_plugin.query_job_status = wrap_status_query(_slurm_plugin.query_job_status)

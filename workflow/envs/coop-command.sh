# Post-deploy script of the envs in workflow/envs/ (NAME.post-deploy.sh links here): Snakemake runs it once, in
# the new env, after creating it. It adds the `coop` command that the rules call. The package itself is not
# installed: the command runs whatever coop is on PYTHONPATH, which the rules set to the workflow's own
# checkout (workflow/rules/common.smk), so the env never holds a stale copy of the code.
set -eu
cat > "$CONDA_PREFIX/bin/coop" <<END
#!/bin/sh
exec "$CONDA_PREFIX/bin/python" -c '
import sys
try:
    import coop.cli
except ModuleNotFoundError as e:
    if e.name != "coop":
        raise
    sys.exit("error: the coop package is not on PYTHONPATH; the workflow sets it (workflow/rules/common.smk), "
             "else run: PYTHONPATH=/path/to/coop-bench coop ...")
sys.argv[0] = "coop"
sys.exit(coop.cli.main())
' "\$@"
END
chmod +x "$CONDA_PREFIX/bin/coop"

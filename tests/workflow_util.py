"""Running the workflow from tests: the tiny config and a `snakemake` call on a scratch folder."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The tiny config, shared with users: .test/config.yaml (snakemake --cores 2 --configfile .test/config.yaml).
TINY = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())


def snakemake_command(workdir: Path, *args: str, config: dict | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the repository's Snakefile in `workdir` with
    `workdir/config.yaml` (written from `config` if given)."""
    cfg = workdir / "config.yaml"
    if config is not None:
        cfg.write_text(yaml.safe_dump(config))
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"]}
    cmd = [str(Path(bindir) / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(cfg), *args]
    return cmd, env


def snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: float = 1800,
              **kw) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir` (see snakemake_command) and wait for it."""
    cmd, env = snakemake_command(workdir, *args, config=config)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, **kw)

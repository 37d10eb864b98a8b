"""The conda environments of `snakemake --sdm conda` (workflow/envs/*.yml) and environment.yml: every rule names an
env that exists where Snakemake resolves it (relative to the rule file), local rules get the light env and the
others the torch env, no env installs the workflow's package (Snakemake builds envs from a copy of the file, where
`-e .` points nowhere), every pin is uv.lock's, the pins are complete (uv resolves each env's pip section to
exactly its pins), each env holds what its rules' commands import, and jobs get this checkout on PYTHONPATH."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

ENVS = sorted((ROOT / "workflow" / "envs").glob("*.yml"))
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
PY = "3.11"  # the envs' python (checked below against each file)
PLATFORM = "x86_64-unknown-linux-gnu"  # the clusters the envs are pinned for (torch's CUDA wheels)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    """uv.lock's version of every package for Python 3.11 (where uv.lock forks by Python version, the branch
    whose resolution markers hold for 3.11)."""
    env = {"python_version": PY, "python_full_version": PY + ".0"}
    out = {}
    for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        markers = p.get("resolution-markers")
        if markers and not any(Marker(m).evaluate(env) for m in markers):
            continue
        out[_norm(p["name"])] = p["version"]
    return out


def _env(path: Path) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip requirements) of an env file."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = [r for d in deps if isinstance(d, dict) for r in d.get("pip", [])]
    return conda, pip


def _pins(reqs: list[str]) -> dict[str, str]:
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", r.strip())
        assert m, f"{r!r}: every pip requirement is pinned as name==version"
        out[_norm(m.group(1))] = m.group(2)
    return out


def _rules(path: Path) -> list[tuple[str, str, bool]]:
    """(rule header, its conda directive or "", localrule) of each rule in a rule file, read from its text."""
    text = path.read_text()
    starts = [m.start() for m in re.finditer(r"^\s*rule\b.*:\s*$", text, flags=re.M)]
    blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    out = []
    for block in blocks:
        conda = re.search(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", block, flags=re.M)
        local = re.search(r"^\s*localrule:\s*True", block, flags=re.M) is not None
        out.append((block.strip().splitlines()[0], conda.group(1) if conda else "", local))
    return out


def test_workflow_has_the_two_envs():
    assert [p.name for p in ENVS] == ["local.yml", "torch.yml"]


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_names_an_existing_env_of_its_kind(rule_file):
    """Snakemake resolves a conda: path relative to the file that holds the rule."""
    rules = _rules(rule_file)
    if rule_file.name in ("common.smk", "checks.smk", "resources.smk", "slurm.smk"):  # no rules: helpers and checks
        assert rules == []
        return
    assert rules, f"{rule_file.name}: no rules found"
    for header, conda, local in rules:
        assert conda, f"{rule_file.name}: {header} has no conda: directive"
        target = (rule_file.parent / conda).resolve()
        assert target.is_file(), f"{rule_file.name}: {header}: {conda} does not exist"
        assert target in ENVS, f"{rule_file.name}: {header}: {conda} is not one of workflow/envs/*.yml"
        # The documented split (README, "Deploying with conda"): local rules (data, manifests, tables, figures)
        # run in the light env, the cluster's GPU/CPU jobs in the torch env.
        assert target.name == ("local.yml" if local else "torch.yml"), f"{rule_file.name}: {header}: {conda}"


@pytest.mark.parametrize("path", ENVS + [ROOT / "environment.yml"], ids=lambda p: p.name)
def test_pins_are_uv_lock_versions(path):
    locked = _locked()
    conda, pip = _env(path)
    assert "pip" in conda
    pythons = [c for c in conda if c.startswith("python")]
    assert pythons == [f"python={PY}"], f"{path.name}: python is pinned as python={PY}"
    requires = SpecifierSet(tomllib.loads((ROOT / "uv.lock").read_text())["requires-python"])
    assert PY + ".0" in requires
    assert set(conda) == {"pip", f"python={PY}"}, f"{path.name}: packages come from pip, at uv.lock's versions"
    reqs = [r for r in pip if r != "-e ."] if path.name == "environment.yml" else pip
    pins = _pins(reqs)
    assert pins, path.name
    for name, version in pins.items():
        assert name in locked, f"{path.name}: {name} is not in uv.lock"
        assert locked[name] == version, f"{path.name}: {name}=={version}, uv.lock has {locked[name]}"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_no_env_installs_the_workflow_package(path):
    """A path, an editable install or a URL cannot work from Snakemake's copy under .snakemake/conda/."""
    conda, pip = _env(path)
    for r in pip:
        assert not re.match(r"(-e|--editable)\b|[./~]|file:|git\+|https?:", r.strip()), f"{path.name}: {r!r}"
    names = {_norm(n) for n in _pins(pip)} | {c.split("=")[0] for c in conda}
    assert "coop-bench" not in names
    # The `coop` command comes from the env's post-deploy script (Snakemake runs NAME.post-deploy.sh).
    assert (path.parent / (path.stem + ".post-deploy.sh")).is_file()


def test_environment_yml_is_used_by_no_rule():
    """environment.yml stays the one-env-for-everything file (`conda env create -f environment.yml` from the
    repository root, where its `-e .` is the repository); Snakemake's copy of it could not install `-e .`."""
    for rule_file in RULE_FILES:
        assert "environment.yml" not in rule_file.read_text(), rule_file.name


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed here (pip install uv)")
    return uv


def _compile(uv: str, requirements: Path) -> subprocess.CompletedProcess:
    """Resolve requirements for the envs' python and platform: from uv's cache first, else from the index."""
    cmd = [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-version", PY,
           "--python-platform", PLATFORM, str(requirements)]
    proc = subprocess.run(cmd + ["--offline"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "network" in proc.stderr.lower():
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 and re.search(r"(?i)connect|dns|network|timed out|resolve host", proc.stderr):
            pytest.skip("no package index reachable to resolve the envs: " + proc.stderr.strip().splitlines()[-1])
    return proc


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_are_complete(path, tmp_path):
    """uv resolves the env's pip section to exactly its pins: pip on the cluster has nothing left to choose
    (no package outside the file, no other version)."""
    _, pip = _env(path)
    requirements = tmp_path / "requirements.in"
    requirements.write_text("\n".join(pip) + "\n")
    proc = _compile(_uv(), requirements)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = _pins([l for l in proc.stdout.splitlines() if l.strip() and not l.startswith("#")])
    pins = _pins(pip)
    missing = {n: v for n, v in resolved.items() if n not in pins}
    assert not missing, f"{path.name}: pip would also install {missing} (uv.lock's versions): pin them"
    assert resolved == pins


# Each env holds what its commands import: the commands run under an import hook that refuses every package
# outside the standard library, coop and the env's own distributions (as installed in the test's venv).
_PROBE = r"""
import importlib.machinery, importlib.metadata, sys
allowed = set(sys.argv[1].split(","))
top = importlib.metadata.packages_distributions()
def _ok(name):
    root = name.split(".")[0]
    if root in sys.stdlib_module_names or root == "coop" or root.startswith("_"):
        return True
    return any(d.lower().replace("_", "-") in allowed for d in top.get(root, ()))
class Absent(importlib.machinery.PathFinder):  # a package outside the env is not found, as if not installed
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return importlib.machinery.PathFinder.find_spec(name, path, target) if _ok(name) else None
sys.meta_path[:] = [Absent if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
from coop.cli import main
for argv in [a.split("\x1f") for a in sys.argv[2:]]:
    if argv[0] == "import":
        __import__(argv[1])
    elif main(argv) != 0:
        sys.exit(f"failed: {argv}")
"""


def _probe(env: str, *commands: list[str]) -> subprocess.CompletedProcess:
    allowed = ",".join(_pins(_env(ROOT / "workflow" / "envs" / env)[1]))
    args = ["\x1f".join(c) for c in commands]
    return subprocess.run([sys.executable, "-c", _PROBE, allowed, *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"})


def test_local_env_runs_the_local_commands_without_torch(tmp_path):
    assert "torch" not in _pins(_env(ROOT / "workflow" / "envs" / "local.yml")[1])
    root, out = str(tmp_path / "data"), str(tmp_path / "m.json")
    proc = _probe("local.yml",
                  ["data", "toy", "--dataset", "toy_shapes", "--root", root, "--n-train", "2", "--n-val", "1",
                   "--n-test", "1", "--image-size", "16"],
                  ["data", "sample", "--dataset", "toy_shapes", "--shots", "1", "--seed", "1", "--root", root,
                   "--out", out],
                  *[["import", m] for m in ("coop.data.prepare", "coop.report.collect", "coop.report.tables",
                                             "coop.report.paper", "coop.report.paper_figures", "coop.report.paper_fig5",
                                             "coop.report.figures")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(out).is_file()


def test_refusing_hook_refuses(tmp_path):
    """The probe's hook is not a no-op: torch is refused under the local env."""
    proc = _probe("local.yml", ["import", "torch"])
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_torch_env_imports_the_gpu_commands():
    modules = ("coop.experiment", "coop.features", "coop.pretrain", "coop.transfer", "coop.interpret",
               "coop.models.clip", "coop.methods.coop", "coop.methods.linear_probe", "coop.methods.text_heads",
               "coop.methods.zeroshot", "coop.methods.finetune_image", "sklearn.linear_model", "open_clip")
    proc = _probe("torch.yml", *[["import", m] for m in modules])
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_post_deploy_script_makes_a_coop_command(tmp_path):
    """The post-deploy script writes $CONDA_PREFIX/bin/coop, which runs the coop on PYTHONPATH with the env's
    python and says what to do when there is none."""
    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the test's venv
    (prefix / "bin" / "python").chmod(0o755)
    for env in ENVS:
        script = env.parent / (env.stem + ".post-deploy.sh")
        subprocess.run(["sh", str(script)], check=True, env={**os.environ, "CONDA_PREFIX": str(prefix)})
        coop = prefix / "bin" / "coop"
        assert os.access(coop, os.X_OK)
        ok = subprocess.run([str(coop), "list"], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert ok.returncode == 0, ok.stderr
        assert "coop" in ok.stdout and "linear_probe" in ok.stdout


def test_jobs_get_this_checkout_on_pythonpath(tmp_path):
    """A job's shell (what a conda env's `coop` imports) has the workflow's base dir first on PYTHONPATH,
    and still fails on the first failing command (Snakemake's default `set -euo pipefail`)."""
    from workflow_util import TINY, snakemake_command

    fake = tmp_path / "bin"
    fake.mkdir()
    probe = tmp_path / "pythonpath.txt"
    (fake / "coop").write_text(f"#!/bin/sh\nprintf '%s' \"$PYTHONPATH\" > {probe}\nexit 3\n")
    (fake / "coop").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    cmd, env = snakemake_command(work, "--cores", "1", "data/toy_shapes/split_zhou_ToyShapes.json", config=TINY)
    env = {**env, "PATH": str(fake) + os.pathsep + env["PATH"], "PYTHONPATH": "/elsewhere"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode != 0  # the fake coop fails: so does the job
    assert probe.read_text() == f"{ROOT}:/elsewhere"

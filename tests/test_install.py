"""uv.lock, pyproject.toml and environment.yml name the same packages at the same versions."""
import re
import tomllib

from conftest import ROOT


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines):
    out = {}
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;]+)\s*", line)
        if m:
            out[_norm(m.group(1))] = m.group(2)
    return out


def test_environment_yml_matches_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"])
    assert len(declared) == len(project["dependencies"]), "every dependency is pinned with =="
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {_norm(p["name"]): p["version"] for p in lock["package"]}
    for name, version in declared.items():
        assert locked.get(name) == version, f"{name}: pyproject {version}, uv.lock {locked.get(name)}"
    env_pins = _pins(l.strip().lstrip("- ").strip() for l in (ROOT / "environment.yml").read_text().splitlines())
    assert env_pins == declared


def test_torch_and_torchvision_import_together():
    import torch
    import torchvision
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1.01]])
    assert nms(boxes, torch.tensor([1.0, 0.5]), 0.5).tolist() == [0]
    assert torchvision.__version__.split("+")[0] and torch.__version__

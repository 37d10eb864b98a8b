"""Every registered method (timm style: one parametrised test over the registry): train two seeds together, save,
reload the finished run as a classifier and evaluate it; and the registry's refusals of bad declarations."""
import dataclasses
import json

import numpy as np
import pytest

from coop.methods import registry
from coop.methods.registry import Cost, Method, MethodError, PluginError, all_methods, get_method, load_plugins

FAST = {"epochs": 2, "n_ctx": 4, "search_steps": 1, "max_iter": 200}  # applied where a method has the field


def fast_params(method: Method) -> dict:
    fields = {f.name for f in dataclasses.fields(method.config)}
    return {k: v for k, v in FAST.items() if k in fields}


@pytest.mark.parametrize("name", list(all_methods()))
def test_every_registered_method_trains_saves_reloads_and_evaluates(name, toy_root, tmp_path):
    from coop.experiment import run_seeds
    from coop.transfer import transfer_run

    m = get_method(name)
    shots, seeds = (2, [1, 2]) if m.few_shot else (0, [0])
    records = run_seeds(seeds, str(tmp_path / "run" / "seed{seed}"), dataset="toy_shapes", method=name,
                        shots=shots, backbone="toy-rn", pretrained="random", params=fast_params(m),
                        data_root=toy_root, cache_dir=tmp_path / "cache", log=lambda s: None)
    assert [r["seed"] for r in records] == seeds and all(r["method"] == name for r in records)
    for seed, record in zip(seeds, records):
        run = tmp_path / "run" / f"seed{seed}"
        on_disk = json.loads((run / "metrics.json").read_text())
        assert on_disk["accuracy"] == record["accuracy"] and 0 <= record["accuracy"] <= 100
        assert record["n_test"] == 30 and record["n_classes"] == 10
        if m.classifier_file:  # the declared file, holding the declared tensors
            from safetensors.numpy import load_file

            assert set(m.classifier_keys) <= set(load_file(str(run / m.classifier_file)))
        if m.classifier is None:
            with pytest.raises(MethodError, match="cannot be evaluated on other datasets"):
                transfer_run(run, ["toy_shapes"], data_root=toy_root, cache_dir=tmp_path / "cache")
            continue
        # the reloaded classifier scores the test set exactly as the finished run did
        same = transfer_run(run, ["toy_shapes"], data_root=toy_root, cache_dir=tmp_path / "cache",
                            log=lambda s: None)["targets"]["toy_shapes"]
        assert (same["accuracy"], same["macro_f1"]) == (record["accuracy"], record["macro_f1"])
    if m.interpretable:
        from coop.interpret import nearest_words

        words = nearest_words(tmp_path / "run" / f"seed{seeds[0]}", data_root=toy_root)
        assert len(words["nearest"]) == words["n_ctx"] * (10 if words["csc"] else 1)
    if len(seeds) > 1 and m.few_shot:  # each seed its own subset
        assert records[0]["manifest_hash"] != records[1]["manifest_hash"]


@pytest.mark.parametrize("name", list(all_methods()))
def test_every_declaration_is_complete(name):
    m = get_method(name)
    assert m.display_name and m.description and callable(m.train)
    from coop.job_sizes import JobSizes
    from coop.methods.registry import STEPS

    assert m.cost.step in STEPS
    cfg = {"data_root": "data", "backbones": {"rn50": {"model": "RN50-quickgelu"}}, "methods": {name: {"v": {}}},
           "seeds": [1, 2, 3]}
    sizes = JobSizes(cfg)  # its cluster request, modelled from the work (coop.resources)
    shots = (16, 1) if m.few_shot else (0, 0)
    big, small = (sizes.run("imagenet", "rn50", name, "v", s, n) for s, n in ((shots[0], 3), (shots[1], 1)))
    assert big.minutes >= small.minutes > 0 and big.mem_mb >= small.mem_mb > 0 and big.disk_mb >= small.disk_mb
    assert m.config() is not None  # every parameter has a default
    assert not (m.interpretable and not m.classifier_file)


def _method(**kw):
    @dataclasses.dataclass
    class Cfg:
        x: int = 1

    base = dict(name="throwaway", config=Cfg, train=lambda ctxs, cfg: [], few_shot=False, needs_images=False,
                description="d", display_name="D")
    return Method(**{**base, **kw})


@pytest.fixture
def clean_registry():
    before, loaded = dict(registry.METHODS), set(registry._LOADED)
    yield
    registry.METHODS.clear()
    registry.METHODS.update(before)
    registry._LOADED.clear()
    registry._LOADED.update(loaded)


@pytest.mark.badinput
@pytest.mark.parametrize("kw, message", [
    ({"name": "coop"}, "'coop' is already taken by a built-in method. Give the new method another name"),
    ({"name": "Bad-Name"}, "invalid name"),
    ({"config": dict}, "no parameter dataclass"),
    ({"train": None}, "train that is not callable"),
    ({"display_name": ""}, "lacks a display_name"),
    ({"interpretable": True}, "interpretable but names no classifier_file"),
    ({"cost": {"minutes": 3}}, "cost that is not a coop.methods.Cost"),
])
def test_bad_declarations_are_refused(clean_registry, kw, message):
    with pytest.raises(PluginError, match=message):
        registry.register(_method(**kw))


@pytest.mark.badinput
def test_bad_plugins_are_named(clean_registry, tmp_path):
    with pytest.raises(PluginError, match="plugin 'no_such_module_xyz' does not import.*PYTHONPATH"):
        load_plugins(["no_such_module_xyz"])
    empty = tmp_path / "empty_plugin.py"
    empty.write_text("X = 1\n")
    with pytest.raises(PluginError, match="registered no method and no table or figure.*register"):
        load_plugins([str(empty)])
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="broken_plugin.py' failed while importing: RuntimeError: boom"):
        load_plugins([str(broken)])
    clash = tmp_path / "clash_plugin.py"
    clash.write_text("from dataclasses import dataclass\nfrom coop.methods import Method, register\n"
                     "@dataclass\nclass C:\n    a: int = 0\n"
                     "register(Method(name='linear_probe', config=C, train=lambda c, g: [], few_shot=True, "
                     "needs_images=False, description='x', display_name='X'))\n")
    with pytest.raises(PluginError, match="clash_plugin.py'.*'linear_probe' is already taken by a built-in"):
        load_plugins([str(clash)])
    missing = tmp_path / "missing_plugin.py"
    missing.write_text("from coop.methods import Method, register\nregister(Method(name='m'))\n")
    with pytest.raises(PluginError, match="missing_plugin.py' failed while importing: TypeError.*missing"):
        load_plugins([str(missing)])


def test_cost_groups_short_jobs():
    assert Cost().job_group(16, seed_minutes=12) == "short_runs"   # modelled
    assert Cost().job_group(16, seed_minutes=150) is None
    assert Cost().job_group(16) is None                             # neither stated nor modelled: its own job
    assert Cost(minutes=10).job_group(16) == "short_runs"
    assert Cost(minutes=10, minutes_per_shot=8).job_group(1) == "short_runs"
    assert Cost(minutes=10, minutes_per_shot=8).job_group(2) is None
    assert Cost(minutes=15, group="zeroshot").job_group(0) == "zeroshot"
    assert Cost(minutes=10, minutes_per_shot=8).runtime(16, 3) == 3 * 138
    assert np.isclose(Cost(minutes=1.5).runtime(0, 2), 3)

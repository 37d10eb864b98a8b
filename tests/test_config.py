import pytest

from coop.config import build_config, parse_sets
from coop.methods.coop import CoOpConfig
from coop.methods.registry import MethodError, all_methods, method_config_class


def test_sets_are_typed():
    cfg = build_config(CoOpConfig, parse_sets(["n_ctx=4", "csc=true", "init=a photo of a", "epochs=none",
                                               "lr=0.01", "class_token_position=middle"]))
    assert (cfg.n_ctx, cfg.csc, cfg.init, cfg.epochs, cfg.lr) == (4, True, "a photo of a", None, 0.01)


@pytest.mark.badinput
@pytest.mark.parametrize("sets, message", [
    (["n_cxt=4"], "Unknown parameter.*n_cxt.*valid:.*n_ctx"),
    (["n_ctx=four"], "n_ctx='four': expected int"),
    (["csc=maybe"], "expected true or false"),
    (["class_token_position=top"], "class_token_position must be one of"),
    (["precision=fp8"], "precision must be one of"),
    (["n_ctx"], "expects key=value"),
])
def test_bad_parameters_are_named(sets, message):
    with pytest.raises(MethodError, match=message):
        build_config(CoOpConfig, parse_sets(sets))


@pytest.mark.parametrize("name", list(all_methods()))
def test_every_registered_method_loads(name):
    assert callable(all_methods()[name].train)
    build_config(method_config_class(name), {})  # defaults are valid


@pytest.mark.badinput
def test_unknown_method():
    from coop.methods.registry import get_method

    with pytest.raises(MethodError, match="Unknown method 'cop'.*coop"):
        get_method("cop")

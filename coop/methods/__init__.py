"""Methods: each declares itself once (coop.methods.registry.Method) where it is defined."""
from coop.methods.base import MethodResult, RunContext
from coop.methods.registry import (
    Cost, Method, MethodError, PluginError, all_methods, get_method, load_plugins, method_classifier,
    method_config_class, register,
)

__all__ = ["Cost", "Method", "MethodError", "MethodResult", "PluginError", "RunContext", "all_methods",
           "get_method", "load_plugins", "method_classifier", "method_config_class", "register"]

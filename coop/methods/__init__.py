"""Adaptation methods in one registry (see registry.py); each module holds one family."""
from coop.methods.registry import METHODS, MethodError, create_method, get_method

__all__ = ["METHODS", "MethodError", "create_method", "get_method"]

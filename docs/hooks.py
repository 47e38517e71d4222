"""MkDocs hook: regenerate the reference pages from the code before each build."""

import importlib.util
from pathlib import Path


def on_pre_build(config, **kwargs):
    path = Path(__file__).with_name("gen_config_reference.py")
    spec = importlib.util.spec_from_file_location("gen_config_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate()  # writes only pages whose text changed, so `mkdocs serve` does not loop

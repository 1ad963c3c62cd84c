"""The YAML configs as package data: ``cilight.configs`` (``pyproject.toml`` maps this folder), so that
``cilight.cli`` finds ``default.yaml`` through ``importlib.resources`` under any install. No code."""

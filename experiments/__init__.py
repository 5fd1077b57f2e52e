"""Entry points (absl) and their configs. Run as modules: python -m experiments.<name>."""

"""Reference harness for zeroth-order (ZO) LLM fine-tuning research."""

__version__ = "0.1.0"

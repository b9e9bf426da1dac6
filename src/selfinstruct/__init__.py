"""Self-Instruct: turn a few seed tasks into an instruction-tuning dataset."""

__version__ = "0.1.0"

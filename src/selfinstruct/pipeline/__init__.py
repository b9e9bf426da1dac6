"""Orchestration over the stages: `run`, batch mode, `status`."""

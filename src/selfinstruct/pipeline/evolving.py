"""`run --evolve OPS`: the pipeline to its target, then `evolve`, then the pipeline again, which
classifies the evolved instructions, writes their instances and filters the whole pool."""

from __future__ import annotations

from dataclasses import dataclass, replace

from selfinstruct.pipeline.run import RunJob, RunReport, run_pipeline
from selfinstruct.stages.evolve import EvolveJob, EvolveReport, evolve


@dataclass
class EvolvingReport:
    run: RunReport
    evolve: EvolveReport | None = None  # None: the first pass stopped (cap, signal)
    after: RunReport | None = None  # the second pass, over the evolved instructions


def run_evolving(job: RunJob, evolve_job: EvolveJob) -> EvolvingReport:
    """Each pass asks only what is missing, so a re-run (cron) asks nothing twice."""
    report = EvolvingReport(run_pipeline(job))
    if report.run.stopped or report.run.interrupted or report.run.incomplete:
        return report
    report.evolve = evolve(evolve_job)
    if report.evolve.stopped or report.evolve.interrupted:
        return report
    # The target is saved in run.json by the first pass: the second one only catches up.
    report.after = run_pipeline(replace(job, target=None, add=None))
    return report

"""Stage 4's rule on curate's scores (`filter --min-score K`): below K is `low_score`."""

from __future__ import annotations

from selfinstruct.errors import ConfigError
from selfinstruct.models import Curation, Instance, instance_id
from selfinstruct.stages.judge import latest_judge, verdicts
from selfinstruct.store.pool import Pool


class MinScore:
    """Keep an instance that the latest judge of POOL/curation.jsonl scored `minimum` or more;
    drop the rest as `low_score` (detail: the score and the judge's reason), or `unscored`
    when that judge has no score for it (run `curate` first). No minimum: keep everything."""

    def __init__(self, pool: Pool, minimum: int | None) -> None:
        self.minimum = minimum
        self.scores: dict[str, Curation] = {}
        if minimum is not None:
            judge = latest_judge(pool, pool.curation, Curation)
            if judge is None:
                raise ConfigError(
                    f"--min-score {minimum}: the pool {pool.root} has no scores yet; "
                    "run `selfinstruct curate` first"
                )
            self.scores = verdicts(pool, pool.curation, Curation, judge)

    def __call__(self, inst: Instance, instruction: str) -> tuple[str, str] | None:
        if self.minimum is None:
            return None
        rec = self.scores.get(instance_id(instruction, inst.input, inst.output))
        if rec is None or rec.score is None:
            why = "the judge gave no score" if rec else "not scored yet: run `selfinstruct curate`"
            return ("unscored", why)
        if rec.score < self.minimum:
            return ("low_score", f"score {rec.score} by {rec.judge}: {rec.reason}")
        return None

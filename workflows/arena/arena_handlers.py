"""Python handlers of the arena mesh (referenced as ``arena_handlers:NAME``).

A handler receives the delivered CloudEvent as a dict and a context, and
returns a dict that is recorded as the action's output in the run's trace.

They keep nothing between calls: running totals per player are the ``leaderboard`` stream's
job, whose windows meshctl checkpoints in its store. A total kept in a module-level dict would
be lost by a crash and ``--resume``, counted twice by a replay, and split between the workers
of a deployment.
"""


class ValidationError(Exception):
    """The event cannot be processed, however often it is retried."""


def record_score(event, context):
    """Add a ranked score to the player's running total."""
    data = event["data"]
    points = data["points"]
    if not isinstance(points, int) or points < 0:
        # Listed in the `standard` policy's non_retryable: dead-lettered at once.
        raise ValidationError(f"invalid points {points!r} for {data['player']}")
    return {"player": data["player"], "match_id": data["match_id"], "points": points}

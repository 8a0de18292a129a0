"""Python handlers of the arena mesh (referenced as ``arena_handlers:NAME``).

A handler receives the delivered CloudEvent as a dict and a context, and
returns a dict that is recorded as the action's output in the run's trace.
"""

# Running totals per player. A real score service would write to its own
# database; an in-process dict keeps the example self-contained.
_TOTALS: dict[str, int] = {}


class ValidationError(Exception):
    """The event cannot be processed, however often it is retried."""


def record_score(event, context):
    """Add a ranked score to the player's running total."""
    data = event["data"]
    points = data["points"]
    if not isinstance(points, int) or points < 0:
        # Listed in the `standard` policy's non_retryable: dead-lettered at once.
        raise ValidationError(f"invalid points {points!r} for {data['player']}")
    total = _TOTALS.get(data["player"], 0) + points
    _TOTALS[data["player"]] = total
    return {"player": data["player"], "match_id": data["match_id"], "total": total}

"""Python handler of the orchestrated arena (``arena_ratings:update_ratings``).

Called by the ``update_ratings`` step with the run's triggering event (a dict)
and a context; the returned dict becomes ``steps.update_ratings.output``.
"""

START_RATING = 1200
K_FACTOR = 32

# Ratings per player; in-process so the example needs no database.
_RATINGS: dict[str, int] = {}


class ValidationError(Exception):
    """The result cannot be rated; retrying will not help."""


def _expected(rating: int, other: int) -> float:
    return 1 / (1 + 10 ** ((other - rating) / 400))


def update_ratings(event, context):
    """Elo update of the winner and loser of a ranked match."""
    data = event["data"]
    winner, loser = data.get("winner_id"), data.get("loser_id")
    if not winner or not loser:
        raise ValidationError(f"ranked match {data['match_id']} has no winner; draws are not rated")
    before = {p: _RATINGS.get(p, START_RATING) for p in (winner, loser)}
    gain = round(K_FACTOR * (1 - _expected(before[winner], before[loser])))
    _RATINGS[winner] = before[winner] + gain
    _RATINGS[loser] = before[loser] - gain
    return {"before": before, "after": {p: _RATINGS[p] for p in (winner, loser)}, "gain": gain}

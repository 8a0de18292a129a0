"""Python handler of the orchestrated arena (``arena_ratings:update_ratings``).

Called by the ``update_ratings`` step with the run's triggering event (a dict)
and a context; the returned dict becomes ``steps.update_ratings.output``.

It keeps nothing between calls: each player's rating at the time of the match comes with the
report (``players[].rating``, 1200 when absent), and the new ratings go out in the output, for
the rating service to store. A rating kept in a module-level dict would be lost by a crash
and ``--resume``, moved twice by a replay, and split between the workers of a deployment.
"""

START_RATING = 1200
K_FACTOR = 32


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
    rating = {p["player_id"]: p.get("rating", START_RATING) for p in data["players"]}
    before = {p: rating.get(p, START_RATING) for p in (winner, loser)}
    gain = round(K_FACTOR * (1 - _expected(before[winner], before[loser])))
    after = {winner: before[winner] + gain, loser: before[loser] - gain}
    return {"before": before, "after": after, "gain": gain}

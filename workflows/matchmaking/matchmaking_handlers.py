"""Python handlers of the matchmaking mesh (``matchmaking_handlers:NAME``).

Each handler works on the durable state of one key (``context.state``, declared by its
service or orchestration): a copy of the stored value, written back when the attempt commits,
together with the events it emitted. A retried attempt starts again from the stored value,
so nothing here is done twice, and nothing is kept in this module: a dict here would be lost
by a crash and ``--resume``, and split between the workers of a deployment.

Every handler first asks "have I acted on this already?" of its state, and does nothing if
so: that is what makes a duplicate ticket, a second report of a match and a replay of the
archive harmless.
"""

TEAM_SIZE = 2
MATCH_SIZE = 2 * TEAM_SIZE
K_FACTOR = 32
RECENT_MATCHES = 20  # the match ids a player's state remembers (its schema's maxItems)


class MatchNotStarted(Exception):
    """A report of a match the match service has not started (yet): retried by policy."""


class ReportMismatch(Exception):
    """A report whose players are not the match's: no retry can fix it."""


def accept_ticket(event, context):
    """Pass a ticket on to its queue's matchmaker, the first time the desk sees it."""
    data = event["data"]
    if context.state:
        context.log(f"ticket {data['ticket']} of {data['player_id']} seen before: ignored")
        return {"ticket": data["ticket"], "duplicate": True}
    context.state["player_id"] = data["player_id"]
    queue = f"{data['region']}/{data['mode']}"
    context.emit("ticket.accepted", {**data, "queue": queue}, subject=data["ticket"])
    return {"ticket": data["ticket"], "duplicate": False}


def queue_ticket(event, context):
    """Add a ticket to its queue; the fourth player forms a match, numbered within the queue."""
    data, state = event["data"], context.state
    state.setdefault("formed", 0)
    waiting = state.setdefault("waiting", [])
    if any(w["player_id"] == data["player_id"] for w in waiting):
        context.log(f"{data['player_id']} is already waiting in {data['queue']}: "
                    f"ticket {data['ticket']} ignored")
        return {"queued": False}
    waiting.append({"player_id": data["player_id"], "ticket": data["ticket"], "rating": data["rating"]})
    if len(waiting) < MATCH_SIZE:
        return {"queued": True, "waiting": len(waiting)}
    state["formed"] += 1
    match_id = f"m-{data['mode']}-{data['region']}-{state['formed']}"
    players = teams(waiting)
    waiting.clear()
    context.emit("match.formed", {"match_id": match_id, "region": data["region"], "mode": data["mode"],
                                  "players": players}, subject=match_id)
    return {"queued": True, "formed": match_id}


def teams(waiting):
    """Two teams of even strength: the best and the weakest player against the two others."""
    ranked = sorted(waiting, key=lambda w: (-w["rating"], w["player_id"]))
    team_of = {0: "a", 1: "b", 2: "b", 3: "a"}
    return [{**w, "team": team_of[i]} for i, w in enumerate(ranked)]


def start_match(event, context):
    """Start a formed match, once: a second match.formed of the same id is ignored."""
    data = event["data"]
    if context.state:
        context.log(f"{data['match_id']} already {context.state['status']}: match.formed ignored")
        return {"match_id": data["match_id"], "duplicate": True}
    players = [{k: p[k] for k in ("player_id", "team", "rating")} for p in data["players"]]
    context.state.update(status="started", region=data["region"], mode=data["mode"], players=players)
    context.emit("match.started", {"match_id": data["match_id"], "region": data["region"],
                                   "players": [p["player_id"] for p in players]}, subject=data["match_id"])
    return {"match_id": data["match_id"], "duplicate": False}


def finish_match(event, context):
    """Turn a game server's report into the match's result, once."""
    data, state = event["data"], context.state
    if not state:
        raise MatchNotStarted(f"no started match {data['match_id']}")
    if state["status"] == "finished":
        context.log(f"{data['match_id']} already finished: report ignored")
        return {"match_id": data["match_id"], "duplicate": True}
    players = state["players"]
    if sorted(data["scores"]) != sorted(p["player_id"] for p in players):
        raise ReportMismatch(f"the report of {data['match_id']} names {sorted(data['scores'])}, "
                             f"the match has {sorted(p['player_id'] for p in players)}")
    scores = data["scores"]
    totals = {team: sum(scores[p["player_id"]] for p in players if p["team"] == team) for team in "ab"}
    winner = "draw" if totals["a"] == totals["b"] else max(totals, key=totals.get)
    state["status"] = "finished"
    context.emit("match.finished", {
        "match_id": data["match_id"], "region": state["region"], "mode": state["mode"],
        "finished_at": data["finished_at"], "winner": winner,
        "players": [{**p, "score": data["scores"][p["player_id"]]} for p in players],
    }, subject=data["match_id"])
    return {"match_id": data["match_id"], "winner": winner, "duplicate": False}


def claim_match(event, context):
    """Claim a finished match for settlement (once per match id) and rate it (team Elo)."""
    data = event["data"]
    if context.state.get("claimed"):
        context.log(f"{data['match_id']} was settled before: nothing to record")
        return {"duplicate": True, "results": []}
    context.state["claimed"] = True
    players = data["players"]
    rating = {team: sum(p["rating"] for p in players if p["team"] == team) / TEAM_SIZE for team in "ab"}
    expected_a = 1 / (1 + 10 ** ((rating["b"] - rating["a"]) / 400))
    result_a = {"a": 1.0, "b": 0.0, "draw": 0.5}[data["winner"]]
    gain_a = round(K_FACTOR * (result_a - expected_a))
    results = [{"player_id": p["player_id"], "score": p["score"], "rating": p["rating"],
                "won": p["team"] == data["winner"], "delta": gain_a if p["team"] == "a" else -gain_a}
               for p in players]
    return {"duplicate": False, "results": results}


def record_score(event, context):
    """Add one match to a player's standing, unless it is among the player's recent matches."""
    data, state = event["data"], context.state
    if data["match_id"] in state.get("recent", []):
        context.log(f"{data['match_id']} already counted for {data['player_id']}")
        return {"player_id": data["player_id"], "duplicate": True}
    state["rating"] = state.get("rating", data["rating"]) + data["delta"]
    state["games"] = state.get("games", 0) + 1
    state["wins"] = state.get("wins", 0) + (1 if data["won"] else 0)
    state["recent"] = [*state.get("recent", []), data["match_id"]][-RECENT_MATCHES:]
    context.emit("player.rated", {"player_id": data["player_id"], "rating": state["rating"],
                                  "games": state["games"], "wins": state["wins"]}, subject=data["player_id"])
    return {"player_id": data["player_id"], "rating": state["rating"], "duplicate": False}

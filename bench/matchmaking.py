"""Generated input for the matchmaking example (workflows/matchmaking), shared by the tests.

``generate(path, n)`` writes ``n`` events, about two seconds apart from 2026-01-01T00:00:00Z,
seeded: the lobby's ``player.queued`` tickets (numbered per region/mode queue; four in five
ranked) and the game servers' ``match.reported`` results, 5 to 15 minutes after each ranked
match forms. To name a match and its players, the generator forms the matches itself, as the
mesh's matchmaker does: four tickets of a queue in ticket order, a player who is already
waiting ignored. The input has what the example is about, at a known rate: tickets the lobby
sends twice (2 %), tickets that arrive after the next one (3 %), a second ticket of a player
still waiting (1 %), results reported twice (2 %), results reported late, after the
leaderboard closed their window (1 %), and results of matches that never formed (0.5 %,
retried, then dead-lettered to ``unmatched-reports``).
"""
from __future__ import annotations

import heapq
import json
import random

from .common import REPO
from .e2e import BASE, _stamp

MATCHMAKING = str(REPO / "workflows" / "matchmaking")
REGIONS = ["eu", "us", "ap"]
MATCH_SIZE = 4


class _Lobby:
    """The queues as the lobby numbers them and the matchmaker groups them."""

    def __init__(self, rng: random.Random, players: int):
        self.rng = rng
        self.rating = {f"p-{i:05d}": rng.randrange(900, 2100) for i in range(players)}
        self.idle = sorted(self.rating)
        self.seq: dict[str, int] = {}
        self.waiting: dict[str, list[str]] = {}
        self.formed: dict[str, int] = {}

    def ticket(self, region: str, mode: str, player: str) -> dict:
        queue = f"{region}/{mode}"
        self.seq[queue] = self.seq.get(queue, 0) + 1
        seq = self.seq[queue]
        return {"ticket": f"t-{region}-{mode[0]}-{seq:06d}", "seq": seq, "player_id": player,
                "region": region, "mode": mode, "rating": self.rating[player]}

    def queue(self, data: dict) -> list[str] | None:
        """The players of the match this ticket completes (ranked), if it does."""
        waiting = self.waiting.setdefault(f"{data['region']}/{data['mode']}", [])
        if data["player_id"] in waiting:
            return None
        waiting.append(data["player_id"])
        if len(waiting) < MATCH_SIZE:
            return None
        players = list(waiting)
        waiting.clear()
        return players


def _queued(i: int, t: float, data: dict) -> dict:
    return {"specversion": "1.0", "id": f"lobby-{i:06d}", "source": f"/lobby/{data['region']}",
            "type": "player.queued", "time": _stamp(t), "subject": data["ticket"], "data": data}


def _report(i: int, t: float, match_id: str, region: str, finished: float, scores: dict) -> dict:
    return {"specversion": "1.0", "id": f"gs-{i:06d}", "source": f"/game-servers/{region}",
            "type": "match.reported", "time": _stamp(t), "subject": match_id,
            "data": {"match_id": match_id, "finished_at": _stamp(finished), "scores": scores}}


def generate(path: str, n: int, seed: int = 13, players: int = 400) -> int:
    """Write ``n`` matchmaking input events to ``path`` (JSON Lines); returns ``n``."""
    rng = random.Random(seed)
    lobby = _Lobby(rng, players)
    reports: list[tuple[float, int, dict, list]] = []  # (due, tie-break, event, players freed) to come
    out: list[dict] = []
    held: dict | None = None  # a ticket that arrives after the next event
    t, number = float(BASE), 0
    while len(out) < n:
        t += rng.uniform(1.0, 3.0)
        number += 1
        if reports and reports[0][0] <= t:
            _, _, report, freed = heapq.heappop(reports)
            out.append(report)
            lobby.idle.extend(freed)  # back in the lobby once their match is over
            continue
        region = rng.choice(REGIONS)
        mode = "ranked" if rng.random() < 0.8 else "casual"
        waiting = lobby.waiting.get(f"{region}/{mode}", [])
        if mode == "ranked" and waiting and rng.random() < 0.01:
            player = rng.choice(waiting)  # queues again while waiting: the matchmaker ignores it
        elif lobby.idle:
            player = lobby.idle.pop(rng.randrange(len(lobby.idle)))
        else:
            continue
        data = lobby.ticket(region, mode, player)
        event = _queued(number, t, data)
        if mode == "casual":
            lobby.idle.append(player)
        else:
            formed = lobby.queue(data)
            if formed is not None:
                _schedule(reports, lobby, rng, t, number, region, formed)
        if rng.random() < 0.02:
            out.append(event)
            event = {**event, "id": f"{event['id']}-again"}  # the lobby sends it twice
        if held is not None:
            out.extend([event, held])
            held = None
        elif rng.random() < 0.03:
            held = event
        else:
            out.append(event)
    with open(path, "w", encoding="utf-8") as fh:
        for event in out[:n]:
            fh.write(json.dumps(event) + "\n")
    return n


def _schedule(reports: list, lobby: _Lobby, rng: random.Random, t: float, number: int, region: str,
              players: list[str]) -> None:
    """The game server's report of a match formed at *t* (and maybe its repeat, or a stray one)."""
    lobby.formed[region] = lobby.formed.get(region, 0) + 1
    match_id = f"m-ranked-{region}-{lobby.formed[region]}"
    finished = t + rng.uniform(300, 900)
    scores = {p: rng.randrange(0, 40) for p in players}
    due = finished + (900 if rng.random() < 0.01 else rng.uniform(5, 30))  # late: the board has moved on
    heapq.heappush(reports, (due, number, _report(number, due, match_id, region, finished, scores), players))
    if rng.random() < 0.02:
        again = _report(number, due + 1, match_id, region, finished, scores)
        heapq.heappush(reports, (due + 1, number, {**again, "id": f"{again['id']}-again"}, []))
    if rng.random() < 0.005:
        stray = _report(number, due + 2, f"m-ranked-{region}-x{number}", region, finished, scores)
        heapq.heappush(reports, (due + 2, number, {**stray, "id": f"{stray['id']}-stray"}, []))


if __name__ == "__main__":
    import sys

    print(generate(sys.argv[1], int(sys.argv[2])))

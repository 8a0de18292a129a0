"""Two versions of a mesh in one deployment (docs/versions.md): `meshctl deploy` keeps each
version, workers started without a PATH take new input on the current one, runs finish on the
version they started on, and a drained version is retired."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cluster.versions import snapshot
from engine.storage import open_broker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "workflows" / "versions"


def _event(n: int, parcel: str) -> dict:
    return {"specversion": "1.0", "id": f"bk-{n}", "source": "/depot", "type": "parcel.booked",
            "data": {"parcel_id": parcel, "weight": 1}}


def _mesh(tmp_path, weigh: str = "2s") -> Path:
    mesh = tmp_path / "mesh"
    shutil.copytree(EXAMPLE, mesh, ignore=shutil.ignore_patterns("__pycache__"))
    text = (mesh / "labelling.yaml").read_text()
    (mesh / "labelling.yaml").write_text(text.replace("sleep: 2s", f"sleep: {weigh}"))
    return mesh


def _label_format(mesh: Path, fmt: str) -> None:
    path = mesh / "labels.py"
    path.write_text(path.read_text().replace('LABEL_FORMAT = "v1/{parcel_id}"', f'LABEL_FORMAT = "{fmt}"'))


def _events(tmp_path, name: str, *events: dict) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_snapshot_holds_the_mesh_and_its_modules_and_names_its_version(tmp_path):
    mesh = _mesh(tmp_path)
    (mesh / "__pycache__").mkdir()
    (mesh / "__pycache__" / "labels.cpython-311.pyc").write_bytes(b"\0")
    (mesh / ".hidden.yaml").write_text("x")
    shot = snapshot(str(mesh))
    assert sorted(shot.files) == ["checks.yaml", "event-types.yaml", "labelling.yaml", "labels.py"]
    assert shot.version == snapshot(str(mesh)).version  # a hash of the files
    _label_format(mesh, "v2/{parcel_id}")
    assert snapshot(str(mesh)).version != shot.version
    single = snapshot(str(mesh / "labelling.yaml"))
    assert single.entry == "labelling.yaml" and "labels.py" in single.files


def test_deploying_the_current_version_again_changes_nothing(meshctl, redis_url, tmp_path):
    mesh = _mesh(tmp_path)
    first = meshctl("deploy", mesh, "--store", redis_url)
    assert first.exit_code == 0 and first.output.startswith("deployed version ")
    again = meshctl("deploy", mesh, "--store", redis_url)
    assert again.exit_code == 0 and "is the current version already: nothing changed" in again.output
    report = json.loads(meshctl("status", "--store", redis_url, "--format", "json").output)
    assert [v["state"] for v in report["versions"]] == ["current"]


def test_a_worker_given_a_path_refuses_a_deployment_of_deployed_meshes(meshctl, redis_url, tmp_path):
    mesh = _mesh(tmp_path)
    assert meshctl("deploy", mesh, "--store", redis_url).exit_code == 0
    result = meshctl("worker", mesh, "--store", redis_url, "--exit-when-idle")
    assert result.exit_code == 2
    assert "start the worker without PATH" in result.output


def test_without_a_deployed_mesh_a_worker_needs_a_path(meshctl, redis_url):
    for command in ("worker", "status"):
        result = meshctl(command, "--store", redis_url)
        assert result.exit_code == 2, result.output
        assert "nothing is deployed in this store: `meshctl deploy PATH --store URL` first" in result.output


def test_an_invalid_mesh_is_not_deployed(meshctl, redis_url, write):
    bad = write("apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: a}\nspec: {version: 0}\n")
    result = meshctl("deploy", bad, "--store", redis_url)
    assert result.exit_code == 1 and "error[" in result.output
    assert open_broker(redis_url).mesh_versions() == []


def _worker(url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker", "--store", url,
         "--name", name, "--format=json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _status(meshctl, url: str) -> dict:
    return json.loads(meshctl("status", "--store", url, "--format=json").output)


def _wait(meshctl, url: str, done, what: str, seconds: float = 60) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        report = _status(meshctl, url)
        if done(report):
            return report
        time.sleep(0.2)
    raise AssertionError(f"not {what}: {report}")


@pytest.mark.slow  # two workers, and runs that wait on a slow step
def test_runs_finish_on_their_version_while_new_input_takes_the_new_one(meshctl, redis_url, tmp_path):
    # v1's runs sleep long enough that they are surely still in flight when v2 is deployed, on a
    # machine however busy; v2's step is quick
    mesh = _mesh(tmp_path, weigh="30s")
    deployed = meshctl("deploy", mesh, "--store", redis_url)
    assert deployed.exit_code == 0, deployed.output
    v1 = deployed.output.split()[2]
    first = _events(tmp_path, "first.jsonl", _event(1, "p-1"), _event(2, "p-2"))
    assert meshctl("publish", mesh, first, "--store", redis_url).exit_code == 0
    workers = [_worker(redis_url, name) for name in ("a", "b")]
    try:
        # both runs started on version 1 and wait in their slow step
        _wait(meshctl, redis_url, lambda r: r["versions"][-1]["runs_in_flight"] == 2, "started")
        _label_format(mesh, "v2/{parcel_id}")  # the changed step
        labelling = mesh / "labelling.yaml"
        labelling.write_text(labelling.read_text().replace("sleep: 30s", "sleep: 1s"))
        redeployed = meshctl("deploy", mesh, "--store", redis_url)
        assert redeployed.exit_code == 0, redeployed.output
        v2 = redeployed.output.split()[2]
        assert v2 != v1
        assert f"version {v1} drains: 2 runs in flight" in redeployed.output
        second = _events(tmp_path, "second.jsonl", _event(3, "p-3"), _event(4, "p-4"))
        assert meshctl("publish", mesh, second, "--store", redis_url).exit_code == 0
        during = _status(meshctl, redis_url)
        assert [(v["version"], v["state"]) for v in during["versions"]][0] == (v1, "draining")
        report = _wait(meshctl, redis_url, lambda r: r["summary"]["runs_completed"] == 4
                       and [v["version"] for v in r["versions"]] == [v2], "drained and retired", seconds=120)
        assert report["versions"][0]["runs_in_flight"] == 0 and report["versions"][0]["work"] == 0
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0], [err for _, err in outputs]
    assert any(f"mesh version {v1} drained: retired" in err for _, err in outputs)
    broker = open_broker(redis_url)
    labels = {e["data"]["parcel_id"]: e["data"]["label"] for e in broker.store.records("emitted")
              if e["type"] == "parcel.labelled"}
    assert labels == {"p-1": "v1/p-1", "p-2": "v1/p-2", "p-3": "v2/p-3", "p-4": "v2/p-4"}


def test_a_version_that_does_not_load_here_is_not_run(meshctl, redis_url):
    broker = open_broker(redis_url)
    broker.deploy_mesh("badbadbadbad", json.dumps({"entry": ".", "files": {"m.yaml": "kind: Nope\n"}}), {})
    result = meshctl("worker", "--store", redis_url)
    assert result.exit_code == 2
    assert "the mesh deployed in this store (version badbadbadbad) does not load here" in result.output

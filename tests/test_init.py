"""`meshctl init`: the starter mesh passes validate, test and run as written; nothing is overwritten
silently."""
from __future__ import annotations

import json
import os

import pytest

from engine.commands.scaffold import FILES, default_name

WRITTEN = list(FILES)


def test_init_then_validate_test_and_run(meshctl, tmp_path):
    mesh = tmp_path / "hello"
    result = meshctl("init", mesh)
    assert result.exit_code == 0
    assert result.output.splitlines()[:5] == [f"created {mesh / name}" for name in WRITTEN]
    assert sorted(os.listdir(mesh)) == sorted(WRITTEN)

    checked = meshctl("validate", "--strict", mesh)
    assert (checked.exit_code, checked.output) == (0, f"{mesh}: valid (0 errors, 0 warnings)\n")

    tested = meshctl("test", mesh)
    assert tested.exit_code == 0
    assert (
        tested.output == "PASS a request is greeted\nPASS every sample event is greeted\n2 passed, 0 failed\n"
    )

    out = tmp_path / "emitted.jsonl"
    ran = meshctl("run", mesh, "--events", mesh / "events.jsonl", "--format", "json", "--output", out)
    assert ran.exit_code == 0
    summary = json.loads(ran.output)
    assert (summary["events_in"], summary["emitted"], summary["dead_lettered"]) == (3, 3, 0)
    texts = [json.loads(line)["data"]["text"] for line in out.read_text().splitlines()]
    assert texts == ["Hello, Ada!", "Hello, Grace!", "Hello, Edsger!"]


def test_the_starter_test_can_fail(meshctl, tmp_path):
    meshctl("init", tmp_path)
    services = tmp_path / "services.yaml"
    services.write_text(services.read_text().replace("Hello, {{ data.name }}!", "Hi {{ data.name }}"))
    result = meshctl("test", tmp_path)
    assert result.exit_code == 1
    assert "FAIL a request is greeted" in result.output


def test_init_here_names_the_mesh_after_the_directory(meshctl, tmp_path, monkeypatch):
    here = tmp_path / "Order Flow"
    here.mkdir()
    monkeypatch.chdir(here)
    assert meshctl("init").exit_code == 0
    assert "  name: order-flow\n" in (here / "mesh.yaml").read_text()
    assert '"source": "order-flow"' in (here / "events.jsonl").read_text()
    assert meshctl("validate", ".").exit_code == 0


def test_name_option(meshctl, tmp_path):
    assert meshctl("init", tmp_path, "--name", "shop.eu-1").exit_code == 0
    assert "  name: shop.eu-1\n" in (tmp_path / "mesh.yaml").read_text()
    assert meshctl("test", tmp_path).exit_code == 0


@pytest.mark.parametrize("name", ["Shop", "-shop", "shop-", "a b", "x" * 64, "a\nb"])
def test_bad_name_is_refused_before_writing(meshctl, tmp_path, name):
    result = meshctl("init", tmp_path / "m", "--name", name)
    assert result.exit_code == 1
    assert "is not a mesh name" in result.output
    assert result.output.count("\n") == 1  # a newline in the name is shown escaped
    assert not (tmp_path / "m").exists()


def test_existing_files_are_not_overwritten(meshctl, tmp_path):
    (tmp_path / "services.yaml").write_text("# mine\n")
    result = meshctl("init", tmp_path)
    assert result.exit_code == 1
    assert result.output == (f"meshctl: {tmp_path / 'services.yaml'} already exists: nothing was written "
                             "(use --force to overwrite)\n")
    assert os.listdir(tmp_path) == ["services.yaml"]
    assert (tmp_path / "services.yaml").read_text() == "# mine\n"


def test_force_overwrites_and_replaces_links_without_following_them(meshctl, tmp_path):
    mesh = tmp_path / "m"
    mesh.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    (mesh / "events.jsonl").symlink_to(outside)
    (mesh / "services.yaml").write_text("# old\n")
    assert meshctl("init", mesh).exit_code == 1
    result = meshctl("init", mesh, "--force")
    assert result.exit_code == 0
    assert outside.read_text() == "keep me\n"
    assert not (mesh / "events.jsonl").is_symlink()
    assert meshctl("test", mesh).exit_code == 0


def test_a_file_in_the_way_is_a_usage_error(meshctl, tmp_path):
    (tmp_path / "file").write_text("")
    result = meshctl("init", tmp_path / "file")
    assert result.exit_code == 2
    assert "is a file" in result.output


@pytest.mark.parametrize(("directory", "name"), [
    ("hello", "hello"), ("My Mesh!", "my-mesh"), ("___", "my-mesh"), ("svc_2.0", "svc_2.0"),
    ("Ärger", "rger"),
])
def test_default_name(tmp_path, directory, name):
    assert default_name(str(tmp_path / directory)) == name

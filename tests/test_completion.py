"""`meshctl completion bash|zsh|fish`, and completions through click's environment-variable protocol."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main


def complete(words: str, cword: int) -> list[str]:
    """What bash completion offers for COMP_WORDS=*words* at COMP_CWORD=*cword*, as (type, value) lines."""
    env = {"_MESHCTL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(main, [], env=env, prog_name="meshctl")
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _meshctl_completion meshctl"),
    ("zsh", "compdef _meshctl_completion meshctl"),
    ("fish", "complete --no-files --command meshctl"),
])
def test_each_shell_gets_a_script(meshctl, shell, marker):
    result = meshctl("completion", shell)
    assert result.exit_code == 0
    assert "_MESHCTL_COMPLETE=" in result.output and marker in result.output


def test_unknown_shell_is_a_usage_error(meshctl):
    result = meshctl("completion", "tcsh")
    assert result.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.output


@pytest.mark.parametrize(("words", "cword", "expect"), [
    ("meshctl val", 1, ["plain,validate"]),
    ("meshctl ex", 1, ["plain,explain", "plain,explore"]),
    ("meshctl explain wrong-", 2, ["plain,wrong-type"]),
    ("meshctl --color ", 2, ["plain,auto", "plain,always", "plain,never"]),
    ("meshctl validate --format s", 3, ["plain,short", "plain,sarif"]),
    ("meshctl validate ", 2, ["file,"]),
])
def test_bash_protocol(words, cword, expect):
    assert complete(words, cword) == expect


@pytest.mark.slow
def test_real_bash_completes_val_to_validate():
    bash = shutil.which("bash")
    assert bash is not None
    scripts = Path(sys.executable).parent
    assert (scripts / "meshctl").exists(), (
        "the meshctl script is installed with the package (pip install -e .)"
    )
    program = """
source <(meshctl completion bash)
COMP_WORDS=(meshctl val); COMP_CWORD=1
_meshctl_completion meshctl
echo "${COMPREPLY[@]}"
"""
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([bash, "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "validate"

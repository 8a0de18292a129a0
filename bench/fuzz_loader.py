"""T12: coverage-guided fuzzing of the loader and the schema check with atheris (nightly).

    pip install -e '.[fuzz]'
    python -m bench.fuzz_loader [--seconds 3600] [--rss-limit-mb 256]

Where T11 (in the test suite) feeds 20,000 generated texts with a fixed seed, this runs
libFuzzer through atheris for a given time: the modules that turn bytes into documents
(``engine.language.source``, ``engine.language.schema``, ``engine.language.compiled_schema``,
PyYAML) are instrumented, so
inputs that reach new branches are kept and mutated further. The corpus starts from every
YAML file under ``workflows/`` and ``tests/cases/``. Each input goes the way a mesh file
goes: read as bytes (size cap, UTF-8), parsed (every document), each document checked
against the DSL schema. Any exception escaping that path is a crash: the input is written
to ``--artifacts`` and the run stops.

libFuzzer runs in a child process (atheris takes over the process it runs in); this parent
reads its log and prints one JSON line: seconds, executions, executions per second, corpus
size, coverage (libFuzzer's ``cov``), crashes, and the child's peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO

SEEDS = ("workflows", "tests/cases")


def target() -> None:
    """The child: instrument the loader, then hand control to libFuzzer (never returns)."""
    import atheris

    with atheris.instrument_imports():
        import yaml  # noqa: F401  (instrumented with the rest)

        from engine.language.schema import check_document
        from engine.language.source import load_documents, read_text
    scratch = tempfile.NamedTemporaryFile(prefix="fuzz-", suffix=".yaml",
                                          dir="/dev/shm" if os.path.isdir("/dev/shm")
                                          else None, delete=False)
    scratch.close()
    path = scratch.name

    def one_input(data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)
        text, diagnostics = read_text(path, "fuzz.yaml")
        if text is None:
            assert diagnostics, "a refused file must say why"
            return
        documents, diagnostics = load_documents(text, "fuzz.yaml")
        for document in documents:
            diagnostics += check_document(document)
        assert documents or diagnostics, "an input must give documents or diagnostics"

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def seed_corpus(folder: Path) -> int:
    count = 0
    for root in SEEDS:
        for source in sorted((REPO / root).rglob("*.yaml")):
            if source.is_file() and not source.is_symlink() and source.stat().st_size < 64 * 1024:
                (folder / f"seed-{count:04d}.yaml").write_bytes(source.read_bytes())
                count += 1
    return count


STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: \d+ corp: (\d+)/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_loader", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--rss-limit-mb", type=int, default=256)
    parser.add_argument("--artifacts", default=str(REPO / "bench" / "results" / "fuzz-crashes"))
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fuzz-corpus-") as corpus:
        seeds = seed_corpus(Path(corpus))
        artifacts = Path(args.artifacts)
        artifacts.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-c", "from bench.fuzz_loader import target; target()", corpus,
                   f"-max_total_time={args.seconds}", f"-rss_limit_mb={args.rss_limit_mb}",
                   "-max_len=4096", "-timeout=10", f"-artifact_prefix={artifacts}/", "-print_final_stats=1"]
        started = time.monotonic()
        child = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        elapsed = time.monotonic() - started
    log = child.stderr
    statuses = STATUS.findall(log)
    execs, cov, corp = (int(x) for x in statuses[-1]) if statuses else (0, 0, 0)
    final = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    execs = int(final.group(1)) if final else execs
    peak = re.search(r"stat::peak_rss_mb:\s*(\d+)", log)
    crashed = child.returncode != 0
    figures = {"test": "T12", "seconds": round(elapsed), "seed_files": seeds, "executions": execs,
               "executions_per_s": round(execs / elapsed) if elapsed else 0, "coverage": cov, "corpus": corp,
               "crashes": 1 if crashed else 0, "exit": child.returncode,
               "peak_rss_mb": int(peak.group(1)) if peak else
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
               "rss_limit_mb": args.rss_limit_mb}
    if crashed:
        figures["log_tail"] = log[-3000:]
    print(json.dumps(figures))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())

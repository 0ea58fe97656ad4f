"""Every command in the README's ``sh`` blocks, and every example in the ``--help`` of
``labctl run / runs / resume``, runs as written on the virtual lab.

Rules (all in ``prepare`` below, nothing else is changed):
- the data home is a temporary folder (``LABCTL_DATA``), the working folder the checkout;
- ``labctl run protocol`` gets short parameters appended (fewer points, same steps);
- ``<run-id>`` is the id of a run aborted for the purpose;
- a ``--help`` example that is also in the README runs once;
- ``make run`` / ``make test`` are ``labctl run protocol`` (below) and this suite itself;
- commands with ``--station lab.toml`` need the real instruments: the copied station
  file is validated instead (tests/test_hardware.py runs them on a real station);
- ``labctl sim serve`` runs until it says ``ready``, then gets Ctrl-C (exit 0).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import free_base_port, stop

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "rt.sweeps=cooling", "--set", "vi.current_step=10", "--set", "radial-field.repeats=1",
         "--set", "radial-scan.n_points=11"]
TIMEOUT = 300


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


def help_examples() -> list[str]:
    out = []
    for verb in ("run", "runs", "resume"):
        res = subprocess.run([sys.executable, "-m", "labctl", verb, "--help"], capture_output=True, text=True,
                             cwd=REPO, timeout=60)
        assert res.returncode == 0, res.stderr
        text = res.stdout.split("examples:", 1)
        assert len(text) == 2, f"labctl {verb} --help has no examples"
        for line in text[1].splitlines():
            line = line.strip()
            if not line.startswith("labctl "):
                if out and line == "":
                    break
                continue
            out.append(shlex.join(shlex.split(line.replace("<run-id>", "RUNID"))).replace("RUNID", "<run-id>"))
    return out


class Lab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = {**os.environ, "LABCTL_DATA": str(tmp / "data"), "COLUMNS": "160"}
        self.env.pop("LABCTL_PAUSE_TIMEOUT", None)
        self.aborted_id: str | None = None

    def labctl(self, args: list[str], timeout=TIMEOUT):
        return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True, cwd=REPO,
                              env=self.env, timeout=timeout, stdin=subprocess.DEVNULL)

    def run_id_to_resume(self) -> str:
        """A new V-I run aborted by SIGTERM once it started (what `labctl resume` is for)."""
        data = self.tmp / "data"
        before = set(p.name for p in data.iterdir()) if data.is_dir() else set()
        proc = subprocess.Popen([sys.executable, "-m", "labctl", "run", "vi", "--quiet", "--set", "current_step=5"],
                                cwd=REPO,
                                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + TIMEOUT
        run_id = None
        while time.monotonic() < deadline and run_id is None:
            for d in (data.iterdir() if data.is_dir() else []):
                log = d / "run.log"
                if d.name not in before and log.is_file() and "step vi start" in log.read_text():
                    run_id = d.name
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 1
        self.aborted_id = run_id
        return run_id

    def prepare(self, command: str) -> list[str] | None:
        words = shlex.split(command)
        if words[0] == "make":
            assert words[1:] in (["run"], ["test"]), command
            return None
        if words[0] == "cp":
            src, dst = words[1], words[2]
            shutil.copy(REPO / src, self.tmp / dst)
            from labctl.config import load_station

            load_station(self.tmp / dst)  # the copied example is a valid station file
            return None
        assert words[0] == "labctl", command
        args = words[1:]
        if "--station" in args and args[args.index("--station") + 1] == "lab.toml":
            return None  # real instruments (see the module docstring)
        args = [str(self.run_id_to_resume()) if a == "<run-id>" else a for a in args]
        if args[:2] == ["run", "protocol"]:
            args += SHORT
        return args

    def check(self, command: str) -> None:
        args = self.prepare(command)
        if args is None:
            return
        if args[:2] == ["sim", "serve"]:
            self.serve(args)
            return
        res = self.labctl(args)
        assert res.returncode == 0, (command, res.stdout[-2000:], res.stderr[-2000:])
        assert "Traceback" not in res.stderr, (command, res.stderr)

    def serve(self, args: list[str]) -> None:
        proc = subprocess.Popen([sys.executable, "-m", "labctl", *args], cwd=REPO, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        lines = [line]
        while line and line.strip() != "ready":
            line = proc.stdout.readline()
            lines.append(line)
        if not line:  # the documented ports are taken (another test or labctl on this machine)
            err = proc.communicate(timeout=60)[1]
            assert "--base-port" in err, err
            return self.serve(args + ["--base-port", str(free_base_port())])
        time.sleep(1.0)  # serving (a Ctrl-C before the serve loop starts is a plain interrupt, exit 1)
        out, err, stopped = stop(proc, signal.SIGINT)
        assert stopped and proc.returncode == 0, (out, err)
        assert any(l.startswith("current_source ") for l in lines), lines


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(tmp_path_factory.mktemp("readme"))


def test_readme_has_the_commands_we_promise():
    commands = readme_commands()
    assert "labctl run vi --set current_step=2 --set temperature=6.5" in commands
    assert any("--protocol docs/my-protocol.toml" in c for c in commands)
    assert (REPO / "docs" / "my-protocol.toml").is_file()
    assert len(commands) >= 15


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs_as_written(lab, command):
    lab.check(command)


@pytest.mark.parametrize("command", [c for c in help_examples() if c not in readme_commands()])
def test_help_example_runs_as_written(lab, command):
    lab.check(command)


def test_runs_gives_the_same_answer_from_any_folder(lab, tmp_path):
    lab.run_id_to_resume()  # at least one run in the data home
    answers = []
    for cwd in (REPO, tmp_path, Path("/")):
        res = subprocess.run([sys.executable, "-m", "labctl", "runs", "--json"], capture_output=True, text=True,
                             cwd=cwd, env=lab.env, timeout=60)
        assert res.returncode == 0, res.stderr
        answers.append(res.stdout)
    assert answers[0] == answers[1] == answers[2] and lab.aborted_id in answers[0]

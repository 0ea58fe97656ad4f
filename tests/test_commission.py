"""`labctl station commission` on the virtual lab, its prompts answered by the test (issue 12)."""
from __future__ import annotations

import pytest

from labctl.cli import main
from labctl.commission import FAIL, PASS, SKIP, Commission
from labctl.station import Station


class Answers:
    """Scripted operator: answers in order (default 'y'), records every prompt."""

    def __init__(self, answers=None, default="y"):
        self.answers = list(answers or [])
        self.default = default
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0) if self.answers else self.default


def run(answers: Answers, **overrides):
    station = Station.from_file(None, seed=5, **overrides)
    said: list[str] = []
    c = Commission(station, ask=answers, say=said.append)
    c.run()
    return c, station, said


def test_commission_runs_to_its_checklist_on_the_virtual_lab():
    answers = Answers()
    c, station, said = run(answers)
    status = {i.name: i.status for i in c.items}
    assert c.ok and all(s == PASS for s in status.values()), [i for i in c.items if i.status != PASS]
    for name in ("current_source identity", "stage identity", "voltmeter error queue (before)", "heater off",
                 "loop setup", "heater low range", "heater off again", "stage home", "stage small move",
                 "1 A on", "current to zero, output off", "probe zero", "stage error queue (after)"):
        assert status[name] == PASS
    # a prompt before every change, none before a query
    assert len(answers.prompts) == 12
    assert any("LOW range" in p for p in answers.prompts) and any("ZPROBE" in p for p in answers.prompts)
    assert not any("identity" in p for p in answers.prompts)
    # the reading after each change, and the checklist at the end
    text = "\n".join(said)
    assert "checklist:" in text and f"{len(c.items)} passed, 0 failed, 0 skipped" in text
    assert "1 A on: read back 1.0" in text or "1 A on: read back 0.99" in text
    # the instruments are left safe: heater off, output off, stage homed and stopped
    lab = station.lab
    assert lab.world.controller.heater_range == 0
    assert lab.instruments["current_source"].output is False
    assert lab.instruments["stage"].homed and not lab.world.stage.moving


def test_commission_skip_and_quit():
    # skip the heater steps, then quit at the stage: the rest is skipped, nothing moved
    answers = Answers(["n", "n", "n", "n", "q"])
    c, station, _ = run(answers)
    status = {i.name: i.status for i in c.items}
    assert status["heater off"] == SKIP and status["stage home"] == SKIP
    assert status["current_source identity"] == PASS
    assert "1 A on" not in status and "probe zero" not in status  # never reached
    assert len(answers.prompts) == 5
    lab = station.lab
    assert not lab.instruments["stage"].homed and lab.world.stage.enabled is False  # untouched: power-up state
    assert c.ok  # skipped is not failed


def test_commission_reports_a_failed_read_back():
    # the stage stalls during its home search: that step fails, the checklist says so
    answers = Answers()
    station = Station.from_file(None, seed=5)
    said: list[str] = []
    c = Commission(station, ask=answers, say=said.append)
    station.connect()
    station.lab.inject("stage", "stall")
    c.run()
    status = {i.name: i.status for i in c.items}
    assert status["stage home"] == FAIL and not c.ok
    assert "1 failed" in said[-1] or "failed" in said[-1]


def test_commission_cli_yes_on_the_virtual_lab(capsys):
    assert main(["station", "commission", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "checklist:" in out and "0 failed" in out


def test_commission_cli_refuses_yes_on_real_instruments(capsys):
    assert main(["station", "commission", "--yes", "--station", "lab-example.toml"]) == 2
    assert "only on the virtual lab" in capsys.readouterr().err

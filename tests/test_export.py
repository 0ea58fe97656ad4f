"""``labctl export``: NeXus/HDF5 validated by nexusformat (NXiv_temp for R(T) and V–I) and read
back with h5py; bluesky event-model documents validated by event-model's own JSON schemas."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labctl.cli import main
from labctl.export import export

h5py = pytest.importorskip("h5py")
nexus = pytest.importorskip("nexusformat.nexus")
event_model = pytest.importorskip("event_model")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "examples" / "protocol_Pb_meissner"


@pytest.fixture(scope="module")
def nxs(tmp_path_factory):
    return export(EXAMPLE, "nexus", tmp_path_factory.mktemp("nx") / "run.nxs")


def test_nexus_entries_validate_against_their_application_definitions(nxs):
    root = nexus.nxload(str(nxs))
    entries = root.NXentry
    assert [e.nxname for e in entries] == ["entry1_rt", "entry2_vi", "entry3_normal_control", "entry4_radial_field",
                                           "entry5_radial_scan", "entry6_residual"]
    for e in entries:
        warnings, errors = e.validate(level="error")
        assert errors == 0, e.nxname
    assert root["entry1_rt/definition"].nxvalue == "NXiv_temp"
    assert root["entry2_vi/definition"].nxvalue == "NXiv_temp"


def test_nexus_data_units_and_station_snapshot(nxs):
    with h5py.File(nxs, "r") as f:
        assert f.attrs["NX_class"] == "NXroot" and f.attrs["default"] == "entry1_rt"
        rt = f["entry1_rt"]
        data = rt["data"]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "resistance" and data.attrs["axes"] == "temperature"
        assert data["temperature"].attrs["units"] == "K" and data["resistance"].attrs["units"] == "ohm"
        want = pd.read_csv(EXAMPLE / "01-rt.csv", comment="#")
        assert list(data["temperature"][:]) == pytest.approx(list(want["Temperature (K)"]))
        env = rt["instrument/environment"]
        assert env.attrs["NX_class"] == "NXenvironment"
        for s in ("temperature_controller", "voltage_controller", "current_sensor"):
            assert env[s].attrs["NX_class"] == "NXsensor"
        snap = rt["instrument/station_snapshot"]
        assert json.loads(snap["station_json"][()].decode()) == json.loads((EXAMPLE / "station.json").read_text())
        cs = snap["current_source"]
        assert cs["limits_max_current"][()] == 600.0 and cs["limits_max_current"].attrs["units"] == "A"
        assert "GEN8-600" in cs["identity"][()].decode()
        vi = f["entry2_vi"]
        assert vi["data"].attrs["signal"] == "voltage" and vi["data/current"].attrs["units"] == "A"
        assert vi["parameters/tap_spacing"].attrs["units"] == "m"
        rf = f["entry4_radial_field/data"]
        assert rf.attrs["signal"] == "field" and rf["field"].attrs["units"] == "T"
        assert rt["sample/name"][()].decode() == "Pb" and rt["sample/atom_types"][()].decode() == "Pb"


def test_event_documents_validate_with_event_model(tmp_path):
    out = export(EXAMPLE, "events", tmp_path / "run.jsonl")
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert names.count("descriptor") == 6
    for name, doc in docs:
        event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)
    start = docs[0][1]
    assert start["sample"] == "Pb" and start["labctl_run_id"] == "20261121-113247-protocol"
    descs = {d["uid"]: d for n, d in docs if n == "descriptor"}
    rt = next(d for d in descs.values() if d["name"] == "rt")
    assert rt["data_keys"]["temperature"]["units"] == "K" and rt["data_keys"]["direction"]["dtype"] == "string"
    events = [d for n, d in docs if n == "event" and descs[d["descriptor"]]["name"] == "rt"]
    assert len(events) == len(pd.read_csv(EXAMPLE / "01-rt.csv", comment="#"))
    assert docs[-1][1]["exit_status"] == "success"
    assert docs[-1][1]["num_events"]["rt"] == len(events)


def test_export_cli_writes_each_format(tmp_path, capsys):
    assert main(["export", str(EXAMPLE), "--format", "NeXus", "-o", str(tmp_path / "a.nxs")]) == 0
    assert (tmp_path / "a.nxs").is_file()
    assert main(["export", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no run folder" in err and "Traceback" not in err


def test_export_of_a_single_foreign_file(tmp_path):
    out = export(ROOT / "data" / "examples" / "vi_Pb_6.8K.csv", "nexus", tmp_path / "vi.nxs")
    with h5py.File(out, "r") as f:
        assert f["entry1_vi/definition"][()].decode() == "NXiv_temp"

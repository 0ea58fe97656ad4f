"""Soak (issue 7): one long virtual-lab V-I step of >= 10^5 rows; memory must stay flat.

Minutes long, so skipped unless LABCTL_SOAK=1 (``python -m labctl.soak soak`` prints the
same figures; docs/reliability.md records them)."""
from __future__ import annotations

import os

import pytest

from labctl.soak import soak

pytestmark = pytest.mark.skipif(os.environ.get("LABCTL_SOAK") != "1", reason="soak: set LABCTL_SOAK=1 (minutes)")


def test_soak_hundred_thousand_rows_memory_flat(tmp_path):
    rows = int(os.environ.get("LABCTL_SOAK_ROWS", "100000"))
    out = soak(rows, tmp_path, trace=True, log=lambda *_: None)
    assert out["exit_code"] == 0
    assert out["rows"] >= 0.95 * rows
    assert out["tracemalloc_peak_MiB"] < 64  # nothing accumulates per row
    samples = [mib for _, mib in out["rss_samples_MiB"]]
    if len(samples) >= 4:  # RSS over the second half of the run grows by less than 16 MiB
        half = samples[len(samples) // 2:]
        assert half[-1] - half[0] < 16, samples

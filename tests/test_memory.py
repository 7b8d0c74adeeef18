"""PeakRss sees a short-lived allocation inside its block, not the process's earlier peak."""

from __future__ import annotations

import time

import numpy as np

from emonets.memory import PeakRss, rss_mb


def test_peak_of_a_block_sees_a_transient_allocation():
    before = rss_mb()
    with PeakRss(interval=0.01) as peak:
        big = np.ones(300 * 2**20 // 8)  # 300 MB, touched
        time.sleep(0.1)
        del big
    assert before is not None and peak.mb >= before + 250
    with PeakRss(interval=0.01) as small:
        time.sleep(0.05)
    assert small.mb < peak.mb - 200  # a later block does not inherit the earlier peak

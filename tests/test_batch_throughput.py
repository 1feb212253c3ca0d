"""`python -m benchmarks.batch_throughput`: one row per batch size, in the JSON it writes."""

import json

import pytest

pytest.importorskip("torch")


def test_batch_throughput_writes_a_row_per_batch(tmp_path):
    from benchmarks.batch_throughput import main

    out = tmp_path / "bt.json"
    assert main(["--batches", "1,2", "--iters", "1", "--input-size", "64", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["runtime"] == "pytorch-fp32" and [r["batch"] for r in report["rows"]] == [1, 2]
    assert all(r["frames_per_s"] > 0 for r in report["rows"])
    assert report["rows"][0]["speedup_vs_first"] == 1.0

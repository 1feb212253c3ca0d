"""bkpose-bench: arithmetic, the JSON contract, device stamps (captured Jetson trees), compare, accuracy."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")

from benchmarks import bench, bench_report, bench_runs  # noqa: E402
from benchmarks import device_stamp as ds  # noqa: E402
from benchmarks.bench_models import bf16_unavailable  # noqa: E402
from benchmarks.common import time_stats  # noqa: E402
from edge.backends.openvino import openvino_available  # noqa: E402

SCHEMA = json.loads(Path(bench.SCHEMA).read_text())
TEGRASTATS = (
    "RAM 2448/31919MB (lfb 6914x4MB) SWAP 0/15959MB (cached 0MB) "
    "CPU [1%@1190,0%@1190,3%@2265,0%@2265,off,off,off,off] EMC_FREQ 7%@2133 GR3D_FREQ 62%@[1377] "
    "VIC_FREQ 729 APE 150 AUX@30.5C CPU@31.5C thermal@30.85C AO@31C GPU@30.5C PMIC@50C"
)


def test_percentiles_and_throughput_arithmetic():
    stats = time_stats([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(100.0)
    assert stats["median"] == pytest.approx(50.5) and stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01) and stats["mean"] == pytest.approx(50.5)
    summary = bench_runs.summarise({"infer": [10.0, 20.0, 30.0]})
    assert summary["infer"]["median"] == pytest.approx(20.0)
    rows = bench_runs.crowd_table([0, 0, 2, 4, 30], [1.0, 3.0, 2.0, 5.0, 9.0])
    assert [(r["people"], r["frames"]) for r in rows] == [("0", 2), ("1-2", 1), ("3-5", 1), ("21+", 1)]
    assert rows[0]["decode_ms"]["median"] == pytest.approx(2.0)
    budget = bench_runs.Budget(frames=5, duration=None)
    assert budget.more(4) and not budget.more(5)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`bkpose-bench --frames 20` with engines/ pointed at an empty folder: the model is made on first use."""
    engines = tmp_path_factory.mktemp("engines")
    out = tmp_path_factory.mktemp("out") / "bench.json"
    patch = pytest.MonkeyPatch()
    patch.setenv("BKPOSE_ENGINES", str(engines))
    try:
        code = bench.main(["--frames", "20", "--warmup", "0.2", "--threads", "1", "--json", str(out)])
    finally:
        patch.undo()
    return code, json.loads(out.read_text()), out


def test_default_run_produces_every_field(default_run):
    code, result, _ = default_run
    assert code == 0
    jsonschema.validate(result, SCHEMA)
    (run,) = result["runs"]
    assert run["frames"] == 20 and run["fps"] > 0 and run["mode"] == "pipelined"
    auto = "openvino" if openvino_available() else "onnxruntime"  # what `auto` takes on a CPU
    assert run["backend"]["backend"] == auto and run["precision"] == "fp32"
    for stage in ("read", "preprocess", "infer", "peaks", "grouping", "total"):
        st = run["stages_ms"][stage]
        assert st["min"] <= st["median"] <= st["p90"] <= st["p99"] <= st["max"]
    assert run["one_off_s"]["model_load"] > 0 and "decoder_compile_s" in run["one_off_s"]
    assert 0 < run["fraction_of_bound"] <= 1.5
    assert sum(r["frames"] for r in run["decode_by_crowd"]) == 20
    assert run["memory"]["host_rss_mib"] > 0 and run["memory"]["gpu"] is None
    assert set(result["includes"]) >= {"read", "preprocess", "infer", "peaks", "grouping", "total"}


def test_sequential_mode_and_precision_sweep(default_run, tmp_path):
    _, result, _ = default_run
    model = result["runs"][0]["model"]
    out = tmp_path / "seq.json"
    code = bench.main(["--model", model, "--mode", "sequential", "--frames", "5", "--warmup", "0",
                       "--precision", "fp32,int8,bf16", "--threads", "1", "--json", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    bf16 = bf16_unavailable("auto") is None  # OpenVINO's bf16 compute of the FP32 file
    # no int8 file next to it: skipped, said so
    assert [r["precision"] for r in data["runs"]] == ["fp32"] + (["fp32"] if bf16 else [])
    if bf16:
        assert [r["backend"]["inference_precision"] for r in data["runs"]] == ["f32", "bf16"]
    assert data["runs"][0]["mode"] == "sequential" and data["runs"][0]["frames"] == 5


def test_device_stamp_off_jetson_marks_unknowns(default_run):
    _, result, _ = default_run
    stamp = result["device"]
    assert stamp["jetson"] is False
    assert (
        stamp["l4t"] == "unknown" and stamp["nvpmodel"] == "unknown" and stamp["jetson_clocks"] == "unknown"
    )
    assert stamp["cpu_cores"] >= 1 and stamp["cpu_model"]
    assert stamp["versions"]["numpy"] == np.__version__


def _write(root, path, text):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture
def xavier_tree(tmp_path):
    """A captured AGX Xavier sysfs/etc tree (JetPack 5.1.2, MODE_30W_ALL, GPU below its maximum)."""
    _write(
        tmp_path, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n"
    )
    _write(tmp_path, "proc/device-tree/model", "Jetson-AGX\x00")
    _write(tmp_path, "var/lib/nvpmodel/status", "pmode:0003 fmode:quiet\n")
    for cpu in range(2):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq/"
        _write(tmp_path, base + "scaling_cur_freq", "1200000\n")
        _write(tmp_path, base + "scaling_max_freq", "1200000\n")
        _write(tmp_path, base + "cpuinfo_max_freq", "2265600\n")
    gpu = "sys/devices/gpu.0/devfreq/17000000.gv11b/"
    _write(tmp_path, gpu + "cur_freq", "905250000\n")
    _write(tmp_path, gpu + "max_freq", "905250000\n")
    _write(tmp_path, gpu + "min_freq", "114750000\n")
    _write(tmp_path, gpu + "available_frequencies", "114750000 216750000 905250000 1377000000\n")
    for i, (name, temp) in enumerate(
        (("CPU-therm", "41500"), ("GPU-therm", "40000"), ("Tdiode_tegra", "-256000"))
    ):
        _write(tmp_path, f"sys/devices/virtual/thermal/thermal_zone{i}/type", name + "\n")
        _write(tmp_path, f"sys/devices/virtual/thermal/thermal_zone{i}/temp", temp + "\n")
    return tmp_path


def test_jetson_readers_on_a_captured_tree(xavier_tree):
    assert ds.is_jetson(str(xavier_tree))
    assert ds.l4t_release(str(xavier_tree)) == "35.4.1"
    assert ds.nvpmodel_mode(str(xavier_tree)) == "mode 3"
    state = ds.jetson_state(str(xavier_tree))
    assert state["gpu"] == {
        "cur_hz": 905250000,
        "max_hz": 905250000,
        "hw_max_hz": 1377000000,
        "min_hz": 114750000,
    }
    assert [c["cur_khz"] for c in state["cpu"]] == [1200000, 1200000]
    assert state["temps_c"] == {"CPU-therm": 41.5, "GPU-therm": 40.0}  # the -256 C sentinel is dropped
    warnings = ds.clock_warnings(state)
    assert any("GPU at 905 MHz of 1377" in w and "jetson_clocks" in w for w in warnings)
    assert any("CPU core" in w for w in warnings)
    stamp = ds.finish_stamp(ds.device_stamp(str(xavier_tree)), str(xavier_tree))
    assert stamp["jetson"] and stamp["board"] == "Jetson-AGX" and stamp["jetson_clocks"] == "not at max"
    assert stamp["throttled"] is False
    (xavier_tree / "sys/devices/gpu.0/devfreq/17000000.gv11b/cur_freq").write_text("675750000\n")
    end = ds.jetson_state(str(xavier_tree))
    assert ds.throttled(stamp["state_start"], end)


def test_nvpmodel_and_tegrastats_parsers():
    assert ds.parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == "MAXN (0)"
    assert ds.parse_nvpmodel("garbage") == "unknown"
    t = ds.parse_tegrastats(TEGRASTATS)
    assert t["ram_mb"] == [2448, 31919]
    assert t["cpu"][:3] == [{"load": 1, "mhz": 1190}, {"load": 0, "mhz": 1190}, {"load": 3, "mhz": 2265}]
    assert t["cpu"][4] is None  # an offline core
    assert (t["emc_load"], t["emc_mhz"], t["gpu_load"], t["gpu_mhz"]) == (7, 2133, 62, 1377)
    assert t["temps"]["GPU"] == 30.5 and t["temps"]["PMIC"] == 50.0


def test_compare_two_saved_results(default_run, tmp_path, capsys):
    _, result, path = default_run
    faster = json.loads(json.dumps(result))
    faster["runs"][0]["fps"] *= 2
    other = tmp_path / "b.json"
    other.write_text(json.dumps(faster))
    capsys.readouterr()
    assert bench.main(["--compare", str(path), str(other)]) == 0
    out = capsys.readouterr().out
    fps_line = next(line for line in out.splitlines() if line.startswith("FPS"))
    assert fps_line.split()[-1] == "2.00"
    assert "infer median ms" in out and "1.00" in out


@pytest.fixture(scope="module")
def two_precisions(model_files):
    return model_files("random-s3-fp16")


def test_accuracy_mode_scores_each_precision_and_gates(two_precisions, shared_data, tmp_path, capsys):
    mini = shared_data / "images" / "coco_train2017_mini"
    args = ["--model", two_precisions, "--accuracy", "--annotations", str(mini / "person_keypoints.json"),
            "--images", str(mini), "--precision", "fp32,fp16,bf16", "--threads", "1"]  # fmt: skip
    code = bench.main([*args, "--max-ap-drop", "1.0", "--json", str(tmp_path / "acc.json")])
    assert code == 0
    assert "28/28" in capsys.readouterr().err  # a progress bar per variant, not minutes of silence
    data = json.loads((tmp_path / "acc.json").read_text())
    jsonschema.validate(data, SCHEMA)
    acc = data["accuracy"]
    assert acc["images"] == 28 and acc["reference"] == "fp32"
    bf16 = {"bf16"} if bf16_unavailable("auto") is None else set()
    assert set(acc["by_precision"]) == {"fp32", "fp16"} | bf16
    assert acc["by_precision"]["fp32"]["ap_drop"] == 0.0
    assert acc["by_precision"]["fp16"]["agreement_with_fp32"]["reference_people"] >= 0
    fp32_people = acc["by_precision"]["fp32"]["agreement_with_fp32"]["reference_people"]
    assert [r["sigma"] for r in acc["noise_floor"]] == [1e-4, 1e-3]  # the scale to read agreement on
    assert all(r["agreement"]["reference_people"] == fp32_people for r in acc["noise_floor"])
    assert bench.main([*args, "--max-ap-drop", "-1", "--json", str(tmp_path / "gate.json")]) == 1


# ------------------------------------------------------------------ what a new user meets
def _bench_cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "benchmarks.bench", *map(str, args)],
                          capture_output=True, text=True, timeout=240, cwd=cwd)  # fmt: skip


@pytest.mark.parametrize(
    "args, words",
    [
        (["--frames", "0"], "--frames"),
        (["--frames", "-5"], "--frames"),
        (["--duration", "-1"], "--duration"),
        (["--threads", "-3"], "--threads"),
        (["--warmup", "-1"], "--warmup"),
    ],
)
def test_numbers_out_of_range_are_refused(args, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "must be" in err


def test_user_mistakes_are_one_line_and_exit_2(default_run, tmp_path):
    _, _, saved = default_run
    model = json.loads(saved.read_text())["runs"][0]["model"]
    text_model = tmp_path / "notes.onnx"
    text_model.write_text("not a model")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00garbage" * 100)
    cases = [
        (["--model", tmp_path / "missing.onnx"], "no such model"),
        (["--model", text_model, "--json", tmp_path / "t.json"], "notes.onnx"),
        (["--model", model, "--source", corrupt, "--json", tmp_path / "c.json"], "corrupt.mp4"),
        (["--compare", tmp_path / "a.json", saved], "no such result file"),
        (["--model", model, "--json", text_model / "dir" / "r.json"], "cannot write"),  # under a file
    ]
    for args, words in cases:
        out = _bench_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and words in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_camera_password_never_reaches_output_or_json(default_run, tmp_path):
    _, _, saved = default_run
    model = json.loads(saved.read_text())["runs"][0]["model"]
    out_json = tmp_path / "r.json"
    url = "rtsp://admin:S3cretPass@127.0.0.1:9/cam"
    out = _bench_cli("--model", model, "--source", url, "--json", out_json)
    assert out.returncode == 2 and "admin:***@" in out.stderr
    written = out_json.read_text() if out_json.exists() else ""
    assert "S3cretPass" not in out.stdout + out.stderr + written


def test_video_source_streams_and_read_includes_decoding(default_run, shared_data, tmp_path):
    """The video is decoded frame by frame during the run (looped), never held in memory whole."""
    _, _, saved = default_run
    model = json.loads(saved.read_text())["runs"][0]["model"]
    video = shared_data / "videos" / "posetrack18_000001_mpiinew_test.mp4"  # 5 frames at 1280x720
    frames, text, live = bench_runs.source_frames(str(video))
    assert not live and "streamed" in text and not isinstance(frames, list)
    assert [next(frames).shape for _ in range(12)] == [(720, 1280, 3)] * 12  # 12 > 5: reopened at its end
    out = tmp_path / "v.json"
    code = bench.main(["--model", model, "--source", str(video), "--frames", "8", "--warmup", "0",
                       "--threads", "1", "--mode", "sequential", "--json", str(out)])  # fmt: skip
    assert code == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["frames"] == 8 and "streamed" in run["source"]


def test_other_cpu_load_is_measured_and_warned():
    start = {"busy_s": 10.0, "total_s": 100.0, "own_s": 1.0}
    end = {"busy_s": 60.0, "total_s": 200.0, "own_s": 21.0}  # 50 s busy, 20 s of them ours
    assert ds.other_load(start, end) == pytest.approx(0.3)
    assert ds.other_load(None, end) is None
    assert ds.cpu_times() is not None and ds.cpu_times()["total_s"] > 0


def test_pipelined_bound_uses_means_so_fps_cannot_exceed_it():
    stages = {"infer": {"median": 40.0, "mean": 50.0}, "preprocess": {"median": 1.0, "mean": 1.0}}
    assert bench_runs.pipelined_bound(stages) == pytest.approx(1e3 / 51.0)


def test_an_untrained_model_is_said_in_the_table(capsys):
    run = {
        "model": "m.onnx",
        "precision": "fp32",
        "mode": "sequential",
        "frames": 1,
        "source": "x",
        "fps": 1.0,
        "backend": {"backend": "onnxruntime", "on_gpu": False, "trained": False},
        "stages_ms": {},
        "one_off_s": {},
        "dropped": 0,
        "decode_by_crowd": [],
        "people_per_frame": {"mean": 0, "max": 0},
        "memory": {"host_rss_mib": 1.0, "host_peak_rss_mib": 1.0},
    }
    bench_report.print_run(run)
    assert "UNTRAINED" in capsys.readouterr().out
    run["backend"]["trained"] = True
    bench_report.print_run(run)
    assert "UNTRAINED" not in capsys.readouterr().out


def test_every_stage_a_run_produces_is_in_the_table_and_in_compare(default_run, tmp_path, capsys):
    """CPU runs and a (mocked) TensorRT backend's runs: each stage name they record is a row."""
    from edge import stages
    from edge.backends import Backend, open_backend
    from edge.pipeline import PoseEstimator

    class MockTensorRT(Backend):
        """ONNX Runtime underneath, TensorRT's stage names on top (its CUDA-event stages)."""

        name, on_gpu = "tensorrt", True

        def __init__(self, inner):
            super().__init__()
            self.inner, self.info, self.input, self.output = inner, inner.info, inner.input, inner.output

        def infer(self, image):
            return self.inner.infer(image)

        def _run(self, frame):
            heatmaps, lb, times = super()._run(frame)
            times.update({stages.PREPROCESS_GPU: 0.4, stages.INFER_GPU: 1.5, stages.DOWNLOAD_GPU: 0.1})
            return heatmaps, lb, times

    _, _, saved = default_run
    model = json.loads(saved.read_text())["runs"][0]["model"]
    from edge.sources import SyntheticSource

    frames = SyntheticSource(320, 240, count=2).images
    for backend in (open_backend(model, device="cpu", threads=1), MockTensorRT(open_backend(model, "cpu"))):
        with PoseEstimator(backend) as estimator:
            estimator.warmup()
            for mode in ("sequential", "pipelined"):
                budget = bench_runs.Budget(frames=3, duration=None)
                if mode == "sequential":
                    raw = bench_runs.run_sequential(estimator, iter(frames * 2), budget, 0.0)
                else:
                    raw = bench_runs.run_pipelined(estimator, iter(frames * 2), budget, 0.0, False)
                produced = {k for k, v in raw["samples"].items() if v}
                assert produced <= set(bench_runs.STAGES), produced - set(bench_runs.STAGES)
                if backend.on_gpu:
                    assert {stages.PREPROCESS_GPU, stages.INFER_GPU, stages.DOWNLOAD_GPU} <= produced
                stats = bench_runs.summarise(raw["samples"])
                run = {"precision": "fp32", "mode": mode, "fps": 1.0, "stages_ms": stats}
                for path in (tmp_path / "a.json", tmp_path / "b.json"):
                    path.write_text(json.dumps({"runs": [run]}))
                capsys.readouterr()
                bench_report.compare([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
                compared = capsys.readouterr().out
                assert all(f"{stage} median ms" in compared for stage in produced)


def test_streams_mode_reports_every_stream(model_files, tmp_path):
    out = tmp_path / "streams.json"
    model = model_files("random-s5-dynbatch-128")
    code = bench.main(["--model", model, "--backend", "ort", "--streams", "3", "--batch", "auto",
                       "--frames", "24", "--warmup", "0.2", "--threads", "1", "--source", "synthetic:320x240",
                       "--json", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    streams = data["runs"][0]["streams"]
    assert streams["count"] == 3 and set(streams["per_stream"]) == {"s0", "s1", "s2"}
    assert sum(s["frames"] for s in streams["per_stream"].values()) == data["runs"][0]["frames"] == 24
    assert all(abs(s["share"] - 1 / 3) < 0.1 for s in streams["per_stream"].values())  # streams take turns
    assert set(streams["batch_trials_ms_per_frame"]) == {"1", "2"}  # measured: the model's batch is dynamic

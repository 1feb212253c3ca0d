"""bkpose-train: the loss, the data pipeline, a tiny CPU run, and resuming exactly."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.layout import BKPOSE_LAYOUT  # noqa: E402
from train import cli  # noqa: E402
from train.data import CocoKeypoints  # noqa: E402
from train.loss import LossConfig, focal_l2, multiscale_loss  # noqa: E402

MINI = "images/coco_train2017_mini"


def test_focal_l2_weights_easy_cells_less():
    config = LossConfig(gamma=2.0)
    weight = torch.ones(1)
    target = torch.tensor([0.0, 0.0, 1.0, 1.0])
    pred = torch.tensor([0.1, 0.5, 0.9, 0.5])
    plain = [
        float(focal_l2(pred[i : i + 1], target[i : i + 1], weight, config, focal=False)) for i in range(4)
    ]
    focal = [
        float(focal_l2(pred[i : i + 1], target[i : i + 1], weight, config, focal=True)) for i in range(4)
    ]
    assert plain == pytest.approx([0.01, 0.25, 0.01, 0.25])
    # background (s* < thre): st = 1 - s - beta; foreground: st = s - alpha; factor = |1 - st|^2
    assert focal == pytest.approx(
        [0.01 * (0.1 + 0.02) ** 2, 0.25 * (0.5 + 0.02) ** 2, 0.01 * (1 - 0.8) ** 2, 0.25 * (1 - 0.4) ** 2]
    )


def test_multiscale_loss_weights_scales_and_masks():
    target = torch.zeros(2, 50, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    preds = [
        [torch.full((2, 50, 32 >> s, 32 >> s), 0.5, requires_grad=True) for s in range(5)] for _ in range(2)
    ]
    total, parts = multiscale_loss(preds, target, mask, focal=False)
    per_cell = 0.25 * (30 + 18 * 3 + 0.1 + 1)  # limbs, keypoints x3, person mask x0.1, keypoint max
    expected = [2 * 2 * per_cell * (32 >> s) ** 2 for s in range(5)]
    assert parts == pytest.approx(expected, rel=1e-5)
    weights = LossConfig().scale_weights
    assert float(total) == pytest.approx(
        sum(w * p for w, p in zip(weights, expected)) / sum(weights) / 2, rel=1e-5
    )
    masked, _ = multiscale_loss(preds, target, torch.zeros_like(mask), focal=False)
    assert float(masked) == 0.0
    total.backward()
    assert preds[1][4].grad is not None


def test_samples_targets_and_flip(shared_data):
    mini = shared_data / MINI
    data = CocoKeypoints(str(mini), str(mini / "person_keypoints.json"), input_size=256, augment=True, seed=3)
    x, target, mask = data[0]
    assert x.shape == (3, 256, 256) and target.shape == (50, 64, 64) and mask.shape == (1, 64, 64)
    assert float(target[30:48].max()) > 0.9  # keypoints rendered
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    x2, target2, _ = data[0]
    assert torch.equal(x, x2) and torch.equal(target, target2)  # randomness from (seed, epoch, index)
    data.set_epoch(1)
    assert not torch.equal(data[0][0], x)


def test_crowd_and_keypointless_people_are_masked_out(tmp_path, shared_data):
    import cv2

    image = np.full((200, 200, 3), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    kps = [0] * 51
    kps[15:18] = [100, 100, 2]  # left shoulder
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "iscrowd": 0,
            "num_keypoints": 1,
            "keypoints": kps,
            "bbox": [90, 90, 20, 20],
        },
        {
            "id": 2,
            "image_id": 1,
            "iscrowd": 0,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
            "bbox": [0, 0, 60, 60],
        },
        {
            "id": 3,
            "image_id": 1,
            "iscrowd": 1,
            "num_keypoints": 0,
            "bbox": [140, 140, 60, 60],
            "segmentation": [[140, 140, 199, 140, 199, 199, 140, 199]],
        },
    ]
    (tmp_path / "a.json").write_text(
        json.dumps(
            {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 200}], "annotations": anns}
        )
    )
    data = CocoKeypoints(str(tmp_path), str(tmp_path / "a.json"), input_size=128, augment=False)
    _, target, mask = data[0]
    m = mask[0].numpy()
    assert m[:5, :5].max() == 0.0  # keypoint-less person's box (0..60 px of 200 -> cells 0..9)
    assert m[-3:, -3:].max() == 0.0  # crowd polygon
    assert m[16, 16] == 1.0  # the labelled person stays in the loss
    assert float(target[48].max()) > 0  # person mask channel


def _args(shared_data, out, *extra):
    mini = shared_data / MINI
    return cli.parse_args(
        [
            "--images",
            str(mini),
            "--annotations",
            str(mini / "person_keypoints.json"),
            "--out",
            str(out),
            "--batch",
            "2",
            "--input-size",
            "128",
            "--workers",
            "0",
            "--limit",
            "6",
            "--max-steps",
            "2",
            "--log-every",
            "1",
            "--precision",  # tiny runs: skip oneDNN's per-shape bf16 warm-up (the bf16 path has its tests)
            "fp32",
            *extra,
        ]
    )


def test_tiny_cpu_run_logs_checkpoints_and_evaluates(shared_data, tmp_path):
    mini = shared_data / MINI
    args = _args(
        shared_data,
        tmp_path,
        "--epochs",
        "2",
        "--val-images",
        str(mini),
        "--val-annotations",
        str(mini / "person_keypoints.json"),
        "--val-limit",
        "2",
    )
    summary = cli.Trainer(args).run()
    assert summary["epoch"] == 2 and summary["focal"] is True and np.isfinite(summary["loss_mean"])
    assert summary["eval"]["images"] == 2 and "AP" in summary["eval"]
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert sum(r["kind"] == "step" for r in records) == 4
    assert (tmp_path / "last.pth").exists() and (tmp_path / "best.pth").exists()
    # the checkpoint is what bkpose-export loads
    from export.checkpoint import load_checkpoint
    from export.model import BKPose

    sha, count = load_checkpoint(BKPose(), str(tmp_path / "last.pth"))
    assert len(sha) == 64 and count > 1000


def test_resume_continues_exactly(shared_data, tmp_path):
    straight = cli.Trainer(_args(shared_data, tmp_path / "a", "--epochs", "2"))
    straight.run()
    first = cli.Trainer(_args(shared_data, tmp_path / "b", "--epochs", "1"))
    first.run()
    resumed = cli.Trainer(
        _args(shared_data, tmp_path / "b", "--epochs", "2", "--resume", str(tmp_path / "b" / "last.pth"))
    )
    assert resumed.epoch == 1
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]


def test_cli_smoke_and_bad_input(shared_data, tmp_path, capsys):
    mini = shared_data / MINI
    assert (
        cli.main(
            [
                "--images",
                str(tmp_path),
                "--annotations",
                str(mini / "person_keypoints.json"),
                "--out",
                str(tmp_path / "r"),
                "--workers",
                "0",
            ]
        )
        == 2
    )
    assert "no annotated image" in capsys.readouterr().err


def test_flip_moves_left_keypoints_into_right_channels(tmp_path, monkeypatch):
    import cv2

    import train.data as data_module

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((128, 128, 3), 100, np.uint8))
    kps = [0] * 51
    kps[15:18] = [30, 60, 2]  # COCO left shoulder at x=30
    ann = {
        "id": 1,
        "image_id": 1,
        "iscrowd": 0,
        "num_keypoints": 1,
        "keypoints": kps,
        "bbox": [20, 50, 20, 20],
    }
    images = [{"id": 1, "file_name": "a.jpg", "width": 128, "height": 128}]
    (tmp_path / "a.json").write_text(json.dumps({"images": images, "annotations": [ann]}))
    for name, value in (
        ("FLIP_PROBABILITY", 1.0),
        ("ROTATION_DEG", 0.0),
        ("SCALE_RANGE", (1.0, 1.0)),
        ("SHIFT_PX", 0.0),
        ("HSV_JITTER", 0.0),
    ):
        monkeypatch.setattr(data_module, name, value)
    _, target, _ = CocoKeypoints(str(tmp_path), str(tmp_path / "a.json"), input_size=128, augment=True)[0]
    left = 30 + BKPOSE_LAYOUT.keypoints.index("left_shoulder")
    right = 30 + BKPOSE_LAYOUT.keypoints.index("right_shoulder")
    assert float(target[left].max()) == 0.0
    y, x = np.unravel_index(int(target[right].argmax()), target[right].shape)
    assert (int(y), int(x)) == (round((60 - 1.5) / 4), round((127 - 30 - 1.5) / 4))  # mirrored, at stride 4


def test_time_budget_stops_mid_epoch_and_resume_is_exact(shared_data, tmp_path):
    """A stretch that runs out of time mid-epoch writes last.pth; resuming sees exactly the
    samples it had not seen, so the weights equal an uninterrupted run's."""
    straight = cli.Trainer(_args(shared_data, tmp_path / "a", "--epochs", "2"))
    straight.run()
    first = cli.Trainer(_args(shared_data, tmp_path / "b", "--epochs", "2", "--time-budget-min", "1e-9"))
    first.run()
    assert (first.epoch, first.batch_in_epoch, first.step) == (0, 1, 1)
    records = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "partial_epoch"
    resumed = cli.Trainer(
        _args(shared_data, tmp_path / "b", "--epochs", "2", "--resume", str(tmp_path / "b" / "last.pth"))
    )
    assert (resumed.epoch, resumed.batch_in_epoch) == (0, 1)
    resumed.run()
    assert resumed.step == straight.step == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compact_state_is_small_and_resumes_close(shared_data, tmp_path):
    from train.state import COMPACT_FORMAT, expand

    trainer = cli.Trainer(_args(shared_data, tmp_path, "--epochs", "1", "--precision", "auto"))
    trainer.run()
    path = tmp_path / "compact.pth"
    assert path.stat().st_size < 16e6  # fp16 weights + bf16 Adam moments of 2.45 M parameters
    state = torch.load(path, weights_only=True)
    assert state["format"] == COMPACT_FORMAT and state["epoch"] == 1
    full = expand(state)
    for key, value in trainer.model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(full["model"][key], value, rtol=1e-3, atol=1e-4), key
    resumed = cli.Trainer(_args(shared_data, tmp_path, "--epochs", "2", "--resume", str(path)))
    assert resumed.epoch == 1 and resumed.step == trainer.step
    resumed.run()
    assert resumed.epoch == 2


def test_resume_at_another_size_restarts_the_best_score_and_the_ledger_says_so(shared_data, tmp_path):
    """Fine-tuning at the deployed size: the best score of the old size is not comparable, so
    best.pth starts again; every stretch's start (size, schedule, where from) is in the ledger."""
    first = cli.Trainer(_args(shared_data, tmp_path / "a", "--epochs", "1"))
    first.best_ap = 0.5  # as if an evaluation at 128 had scored it
    first.run()
    larger = _args(shared_data, tmp_path / "b", "--epochs", "2", "--resume", str(tmp_path / "a" / "last.pth"))
    larger.input_size = 192
    resumed = cli.Trainer(larger)
    assert resumed.best_ap == -1.0 and resumed.step == first.step
    resumed.run()
    same = cli.Trainer(
        _args(shared_data, tmp_path / "c", "--epochs", "2", "--resume", str(tmp_path / "a" / "last.pth"))
    )
    assert same.best_ap == 0.5
    starts = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    starts = [r for r in starts if r["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["args"]["input_size"] == 192
    assert starts[0]["resumed_from"]["input_size"] == 128 and starts[0]["resumed_from"]["epoch"] == 1


def test_fast_cpu_path_keeps_the_loss_within_float_tolerance(shared_data):
    """channels_last changes nothing beyond fp32 rounding; bf16 autocast (network only, loss in
    fp32) stays within bf16's 3 significant digits on the summed loss."""
    from export.model import BKPose, init_quiet_heads

    mini = shared_data / MINI
    data = CocoKeypoints(str(mini), str(mini / "person_keypoints.json"), input_size=128, augment=False)
    x = torch.stack([data[i][0] for i in range(2)])
    target = torch.stack([data[i][1] for i in range(2)])
    mask = torch.stack([data[i][2] for i in range(2)])
    torch.manual_seed(0)
    model = BKPose()
    init_quiet_heads(model)
    model.train()
    with torch.no_grad():
        model.all_predictions(x)  # settle BatchNorm statistics; then compare in eval-free train mode
        reference, _ = multiscale_loss(model(x), target, mask)
        fast = model.to(memory_format=torch.channels_last)
        cl, _ = multiscale_loss(fast(x.contiguous(memory_format=torch.channels_last)), target, mask)
        assert float(cl) == pytest.approx(float(reference), rel=1e-5)
        if cli.cpu_has_bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                predictions = fast(x.contiguous(memory_format=torch.channels_last))
            bf16, _ = multiscale_loss(predictions, target, mask)
            assert float(bf16) == pytest.approx(float(reference), rel=2e-2)


def test_logged_lr_is_the_one_the_step_used(shared_data, tmp_path):
    args = _args(shared_data, tmp_path, "--epochs", "4", "--warmup-steps", "4", "--lr", "1e-3")
    cli.Trainer(args).run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    # warm-up over 4 steps: 1/4, 2/4, 3/4, 4/4 of 1e-3; 75 % and 90 % of 4 epochs are both epoch
    # index 3, where the rate drops once, by 10 (as MultiStepLR with those milestones)
    expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4]
    assert [r["lr"] for r in steps] == pytest.approx(expected)
    assert [r["lr"] for r in records if r["kind"] == "epoch"] == pytest.approx([2.5e-4, 7.5e-4, 1e-3, 1e-4])


def test_export_uses_the_trained_input_size(shared_data, tmp_path):
    """A checkpoint trained at 128 exports a 128 model unless --input-size overrides it."""
    import onnx

    from edge.modelinfo import ModelInfo
    from export import cli as export_cli

    def info_of(path):
        return ModelInfo.from_metadata({p.key: p.value for p in onnx.load(str(path)).metadata_props})

    cli.Trainer(_args(shared_data, tmp_path / "run", "--epochs", "1")).run()
    checkpoint = str(tmp_path / "run" / "last.pth")
    common = ["--checkpoint", checkpoint, "--out", str(tmp_path / "e"), "--no-fp16", "--quiet"]
    export_cli.run(export_cli.parse_args([*common, "--name", "m"]))
    info = info_of(tmp_path / "e" / "m.fp32.onnx")
    assert (info.input_width, info.input_height, info.trained) == (128, 128, True)
    export_cli.run(export_cli.parse_args([*common, "--name", "o", "--input-size", "192"]))
    assert info_of(tmp_path / "e" / "o.fp32.onnx").input_width == 192


def test_packed_set_gives_the_same_targets_as_the_originals(shared_data, tmp_path):
    """A lent GPU gets the training photos packed small; its targets must match the originals'."""
    from train.pack import pack

    mini = shared_data / MINI
    summary = pack(str(mini), str(mini / "person_keypoints.json"), 128, str(tmp_path / "p"))
    assert summary["images"] == 28 and summary["megabytes"] < 1
    original = CocoKeypoints(
        str(mini), str(mini / "person_keypoints.json"), input_size=128, augment=False, limit=4
    )
    packed = CocoKeypoints(
        str(tmp_path / "p" / "images"),
        str(tmp_path / "p" / "annotations.json"),
        input_size=128,
        augment=False,
        limit=4,
    )
    for i in range(4):
        _, t_orig, m_orig = original[i]
        _, t_pack, m_pack = packed[i]
        keypoint_maps = slice(30, 48)
        # the packed short side is rounded to whole pixels: content moves by up to half a pixel,
        # which changes a sigma-9 px Gaussian by up to ~0.03
        assert float((t_orig[keypoint_maps] - t_pack[keypoint_maps]).abs().max()) < 0.05
        assert float((m_orig - m_pack).abs().mean()) < 0.02


@pytest.mark.slow
def test_model_report_exports_at_the_trained_size_and_scores_every_precision(shared_data, tmp_path):
    from benchmarks import model_report

    cli.Trainer(_args(shared_data, tmp_path / "run", "--epochs", "1")).run()
    mini = shared_data / MINI
    code = model_report.main(
        ["--checkpoint", str(tmp_path / "run" / "last.pth"), "--name", "tiny", "--out", str(tmp_path / "e"),
         "--calib-images", str(shared_data / "train" / "coco_val2017_extra"), "--calib-limit", "32",
         "--annotations", str(mini / "person_keypoints.json"), "--images", str(mini), "--threads", "1",
         "--json", str(tmp_path / "report.json")]
    )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["manifest"]["input"]["shape"][2:] == [128, 128]  # trained at 128, exported at 128
    assert set(report["accuracy"]["by_precision"]) == {"fp32", "fp16", "int8"}
    assert "| int8 |" in report["markdown"] and "mean OKS vs fp32" in report["markdown"]


@pytest.mark.slow
def test_sigterm_stops_training_with_the_checkpoint_written(shared_data, tmp_path):
    """The end of a working stretch sends SIGTERM, to the whole process group as docker stop and
    systemd do (loader workers included): the step in flight finishes, last.pth and compact.pth
    are written, and the run resumes from there."""
    import os
    import signal
    import subprocess
    import sys
    import time

    mini = shared_data / MINI
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "train.cli", "--images", str(mini),
         "--annotations", str(mini / "person_keypoints.json"), "--out", str(out), "--batch", "2",
         "--input-size", "128", "--workers", "1", "--limit", "6",
         "--epochs", "100", "--eval-every", "0", "--log-every", "1", "--precision", "fp32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)  # the trainer and its loader worker
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped at epoch" in err and "--resume" in err
    state = torch.load(out / "last.pth", weights_only=True)
    assert state["step"] >= 2
    assert torch.load(out / "compact.pth", weights_only=True)["step"] == state["step"]


def test_ledger_table_reads_one_run_across_folders_and_sizes(tmp_path, capsys):
    """One row per evaluated epoch; the size comes from the stretch's start record, and a second
    log (a fine-tune resumed in another folder) continues the first."""
    from train import ledger

    scores = {"AP": 0.05, "AP50": 0.2, "AP75": 0.01, "APM": 0.02, "APL": 0.09, "AR": 0.1, "people_found": 7}
    epoch = {"kind": "epoch", "loss_mean": 25.0, "lr": 1e-4, "images_per_s": 10.0}
    first = tmp_path / "a.jsonl"
    first.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {**epoch, "epoch": 1, "step": 10},  # not evaluated: no row
                {**epoch, "epoch": 2, "step": 20, "eval": scores},
                {"kind": "step", "epoch": 3, "step": 21, "loss": 1.0},
            )
        )
    )
    second = tmp_path / "b.jsonl"
    second.write_text(
        json.dumps({"kind": "start", "epoch": 2, "step": 20, "args": {"input_size": 384}})
        + "\n"
        + json.dumps({**epoch, "epoch": 4, "step": 40, "eval": {**scores, "AP": 0.09}})
    )
    assert ledger.main([str(first), str(second), "--input-size", "256"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4
    assert table[2].startswith("| 2 | 20 | 256 | 25.00 | 1e-04 | 10.0 | 0.0500 |")
    assert table[3].startswith("| 4 | 40 | 384 |") and "| 0.0900 |" in table[3]
    with pytest.raises(SystemExit):
        ledger.main([str(tmp_path / "missing.jsonl")])

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

"""The BK-Pose network: size, outputs per scale, deterministic untrained weights, checkpoints."""

import pytest

torch = pytest.importorskip("torch")

from export.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from export.model import BKPose, init_random, profile  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return BKPose()


def test_parameter_count_and_macs_match_the_paper_budget(model):
    deployed = profile(model)
    training = profile(model, training_graph=True)
    assert 2.2e6 <= deployed["parameters"] <= 2.6e6  # paper: 2.4 M
    assert 2.2e6 <= training["parameters"] <= 2.6e6
    assert 3.8e9 <= deployed["macs"] <= 4.4e9  # model_spec 4.4: about 4.1 GMACs at 512x512
    assert training["macs"] > deployed["macs"]  # stack 2's lower-scale heads only run in training
    # MACs scale with pixels (SE layers on pooled 1x1 maps excepted)
    assert profile(model, 256, 256)["macs"] == pytest.approx(deployed["macs"] / 4, rel=1e-4)


def test_training_mode_returns_ten_heads_at_five_scales(model):
    model.train()
    with torch.no_grad():
        heads = model(torch.zeros(2, 3, 256, 256))
    assert len(heads) == 2
    for stack in heads:
        assert [tuple(h.shape) for h in stack] == [(2, 50, 64 >> s, 64 >> s) for s in range(5)]


def test_eval_mode_returns_only_the_last_full_resolution_head(model):
    model.eval()
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        out = model(x)
        full = model.all_predictions(x)
    assert tuple(out.shape) == (1, 50, 64, 64)
    assert torch.equal(out, full[-1][0])


def test_every_stack_one_scale_reaches_the_deployed_output():
    """Stack 1's lower-scale heads feed stack 2, so no exported weight is dead."""
    m = BKPose().eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        before = m(x)
        m.heads[0][4].predict.bias.add_(1.0)
        after = m(x)
    assert not torch.allclose(before, after)


def test_random_init_is_deterministic_per_seed():
    calibration = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    a, b, c = BKPose(), BKPose(), BKPose()
    init_random(a, 3, calibration)
    init_random(b, 3, calibration)
    init_random(c, 4, calibration)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    a.eval()
    with torch.no_grad():
        out = a(calibration)
    assert 0.5 <= float(out.abs().max()) <= 1.5  # scaled to heatmap-like magnitudes


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": {"module." + k: v for k, v in sd.items()}},
        lambda sd: {"weights": {"posenet." + k: v for k, v in sd.items()}, "optimizer_weight": {}},
        lambda sd: {"module.posenet." + k: v for k, v in sd.items()},
    ],
    ids=["plain", "state_dict", "model+module", "weights+posenet", "module.posenet"],
)
def test_checkpoint_wrappers_and_prefixes_load(tmp_path, wrap):
    source = BKPose()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    target = BKPose()
    sha, count = load_checkpoint(target, str(path))
    assert len(sha) == 64 and count > 1000
    for k, v in source.state_dict().items():
        assert torch.equal(v, target.state_dict()[k]), k


def test_mismatched_checkpoint_lists_missing_unexpected_and_shapes(tmp_path):
    sd = BKPose().state_dict()
    for key in [k for k in sd if not k.endswith("num_batches_tracked")][:7]:
        del sd[key]
    sd["classifier.weight"] = torch.zeros(3)
    sd["heads.0.0.predict.weight"] = torch.zeros(17, 64, 1, 1)
    path = tmp_path / "other.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(BKPose(), str(path))
    text = str(err.value)
    assert "7 missing" in text and "(2 more)" in text
    assert "1 unexpected: classifier.weight" in text
    assert "heads.0.0.predict.weight (17, 64, 1, 1) vs model (50, 64, 1, 1)" in text
    assert "\n" not in text


def test_unreadable_checkpoints_get_one_line_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(BKPose().state_dict(), good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": (data[: len(data) // 3], "truncated or corrupt"),
        "notes.txt": (b"epoch 60, AP 0.6\n", "not a PyTorch checkpoint"),
        "empty.pth": (b"", "empty"),
        "optimizer.pth": (None, "no state_dict found"),
    }
    torch.save({"optimizer": {"lr": torch.tensor(0.1)}, "epoch": 5}, tmp_path / "optimizer.pth")
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(BKPose(), str(path))
        message = str(err.value)
        assert str(path) in message and expected in message and "\n" not in message, message
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(BKPose(), str(tmp_path / "missing.pth"))

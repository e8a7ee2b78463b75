"""Tests of mazeinterp.analysis.channels: each discovery method finds a planted channel; random models give no winner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mazeinterp.analysis.channels import (
    ChannelTable,
    behaviour_attribution,
    cheese_probe,
    cheese_tracking_channels,
    directional_channels,
)
from mazeinterp.core.hooks import run_states_with_cache
from mazeinterp.core.interventions import ZeroAblate
from mazeinterp.core.model import MOVE_TO_ACTION, MOVES, ImpalaPolicy, Move
from mazeinterp.analysis.vfield import cheese_ward_move, move_probs_for_states

CHEESE_CHANNEL = 5  # planted at embedder.block2.res1.resadd_out
UP_CHANNEL = 3  # planted at embedder.relu3_out
LATE = "embedder.relu3_out"

# The cheese sprite's two brightest colours in the 64×64 observation; on 400 procgen mazes they
# never occur anywhere else in the picture, and every cheese shows at least one of them.
CHEESE_COLOURS = torch.tensor([[254, 231, 98], [253, 155, 37]], dtype=torch.float32) / 255



class CheeseDetectorConv(nn.Conv2d):
    """``embedder.block1.conv`` whose channel ``channel`` is replaced by an exact cheese-colour detector."""

    def __init__(self, conv: nn.Conv2d, channel: int) -> None:
        super().__init__(conv.in_channels, conv.out_channels, kernel_size=3, padding=1)
        self.load_state_dict(conv.state_dict())
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x).clone()
        diff = (x.unsqueeze(1) - CHEESE_COLOURS.view(1, -1, 3, 1, 1)).abs().amax(2)  # (B, colours, H, W)
        out[:, self.channel] = (diff < 0.5 / 255).any(1).float()
        return out


def planted_cheese_model(seed: int = 0) -> ImpalaPolicy:
    """Random scale-1 policy in which channel CHEESE_CHANNEL of block2.res1.resadd_out is a cheese map.

    block1.conv channel 0 detects the cheese's colours; identity-like weights carry it on: the residual
    branches of block1 add nothing to channel 0, block2.conv copies channel 0 into CHEESE_CHANNEL
    (centre tap 1), and block2.res1's branch adds nothing to it. Every other weight stays random.
    """
    torch.manual_seed(seed)
    model = ImpalaPolicy(scale=1).eval()
    emb = model.embedder
    with torch.no_grad():
        emb.block1.conv = CheeseDetectorConv(emb.block1.conv, 0)
        for res in (emb.block1.res1, emb.block1.res2):
            res.conv2.weight[0] = 0.0
            res.conv2.bias[0] = 0.0
        emb.block2.conv.weight[CHEESE_CHANNEL] = 0.0
        emb.block2.conv.weight[CHEESE_CHANNEL, 0, 1, 1] = 1.0
        emb.block2.conv.bias[CHEESE_CHANNEL] = 0.0
        emb.block2.res1.conv2.weight[CHEESE_CHANNEL] = 0.0
        emb.block2.res1.conv2.bias[CHEESE_CHANNEL] = 0.0
    return model


def planted_up_model(seed: int = 0) -> ImpalaPolicy:
    """Random scale-1 policy in which channel UP_CHANNEL of relu3_out pushes the 'up' logit.

    The channel is kept positive (bias +2 on block3.res2.conv2), hidden unit 0 of embedder.fc
    is its spatial mean, and that unit feeds only the 'up' logit (weight 3).
    """
    torch.manual_seed(seed)
    model = ImpalaPolicy(scale=1).eval()
    emb = model.embedder
    with torch.no_grad():
        emb.block3.res2.conv2.bias[UP_CHANNEL] += 2.0
        emb.fc.weight[0] = 0.0
        emb.fc.bias[0] = 0.0
        emb.fc.weight[0, UP_CHANNEL * 64 : (UP_CHANNEL + 1) * 64] = 1 / 64
        model.fc_policy.weight[:, 0] = 0.0
        model.fc_policy.weight[int(MOVE_TO_ACTION[Move.UP]), 0] = 3.0
    return model


def random_model(seed: int) -> ImpalaPolicy:
    torch.manual_seed(seed)
    return ImpalaPolicy(scale=1).eval()


@pytest.fixture(scope="module")
def states(seeded_states):
    return seeded_states


@pytest.fixture(scope="module")
def up_states(seeded_states):
    """Mazes whose cheese-ward move at the decision square is 'up'."""
    chosen = [s for s in seeded_states if cheese_ward_move(s) == Move.UP]
    assert len(chosen) >= 4
    return chosen


# --------------------------------------------------------------------------- planted models behave as planted


def test_planted_cheese_channel_is_a_cheese_map(states):
    model = planted_cheese_model()
    _, cache = run_states_with_cache(model, states[:8], ["embedder.block2.res1.resadd_out"], stop_early=True)
    maps = cache["embedder.block2.res1.resadd_out"][:, CHEESE_CHANNEL]
    assert torch.all(maps.amax((1, 2)) == 1.0)  # the cheese is seen in every maze
    assert torch.all((maps > 0).flatten(1).sum(1) <= 9)  # and only around it


# --------------------------------------------------------------------------- cheese tracking


def test_cheese_tracking_finds_planted_channel(states):
    table = cheese_tracking_channels(planted_cheese_model(), states)
    assert table.channel[0] == CHEESE_CHANNEL
    assert table.score[0] > 0.7 and table.score[0] - table.score[1] > 0.25
    top = table.row(CHEESE_CHANNEL)
    assert top["peak_hit"] == 1.0 and top["cheese_effect"] > 3
    assert table.summary["n_mazes"] == len(states)
    assert 0 < table.summary["peak_chance"] < 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_cheese_tracking_random_model_has_no_winner(states, seed):
    table = cheese_tracking_channels(random_model(seed), states)
    assert table.score[0] < 0.5


def test_cheese_tracking_sign_option(states):
    table = cheese_tracking_channels(planted_cheese_model(), states[:16], sign="both")
    assert table.channel[0] == CHEESE_CHANNEL and table.row(CHEESE_CHANNEL)["sign"] == 1
    negative = cheese_tracking_channels(planted_cheese_model(), states[:16], sign="negative")
    assert negative.rank(CHEESE_CHANNEL) > 0
    with pytest.raises(ValueError, match="sign"):
        cheese_tracking_channels(planted_cheese_model(), states[:2], sign="up")  # type: ignore[arg-type]


def test_cheese_tracking_needs_cheese_and_maps(states):
    model = random_model(0)
    with pytest.raises(ValueError, match="no cheese"):
        cheese_tracking_channels(model, [states[0].without_cheese()])
    with pytest.raises(ValueError, match="needs a"):
        cheese_tracking_channels(model, states[:2], hook="embedder.fc_out")
    with pytest.raises(KeyError, match="did you mean"):
        cheese_tracking_channels(model, states[:2], hook="embedder.relu3")


# --------------------------------------------------------------------------- probe


def test_cheese_probe_finds_planted_channel(states):
    table = cheese_probe(planted_cheese_model(), states)
    assert table.channel[0] == CHEESE_CHANNEL
    assert table.score[0] >= 0.9 and table.score[0] - table.score[1] > 0.25
    assert table.summary["accuracy"] >= 0.9
    assert table.summary["n_test"] == 16 and table.summary["n_train"] == 48
    assert table.summary["chance"] < 0.05


def test_cheese_probe_random_model_has_no_winner(states):
    table = cheese_probe(random_model(0), states)
    assert table.score[0] < 0.7
    assert table.summary["accuracy"] < 0.9


# --------------------------------------------------------------------------- directional channels


def test_directional_finds_planted_up_channel(states):
    table = directional_channels(planted_up_model(), states)
    assert table.channel[0] == UP_CHANNEL
    row = table.row(UP_CHANNEL)
    assert row["top_move"] == "up" and row["push_up"] > 0.5
    assert table.score[0] > 4 * table.score[1]
    assert row["grad_up"] > 0.5  # the first-order estimate agrees
    up_table = directional_channels(planted_up_model(), states[:16], move="up", gradient=False)
    assert up_table.channel[0] == UP_CHANNEL and "grad_up" not in up_table.columns
    down_table = directional_channels(planted_up_model(), states[:16], move=Move.DOWN, gradient=False)
    assert down_table.rank(UP_CHANNEL) == len(down_table) - 1  # ablating it helps every other move most


@pytest.mark.parametrize("seed", [0, 1])
def test_directional_random_model_has_no_winner(states, seed):
    table = directional_channels(random_model(seed), states[:32], gradient=False)
    assert table.score[0] < 2 * table.score[1]


def test_directional_on_residual_inner_hook_uses_full_forward(states):
    """Hook points inside a residual branch fall back to full forward passes and agree with them."""
    model = random_model(0)
    hook = "embedder.block3.res2.relu2_out"
    few = states[:4]
    inner = directional_channels(model, few, hook=hook, gradient=True)
    assert len(inner) == 32 and np.isfinite(inner["grad_up"]).all()
    # push_m by hand: full forward passes with each channel zeroed through the intervention machinery
    clean = np.log(move_probs_for_states(model, few).astype(np.float64))
    for c in (0, 31):  # two channels with pushes of order 1e-4 on this random model
        ablated = np.log(move_probs_for_states(model, few, [ZeroAblate(hook, channels=[c])]).astype(np.float64))
        push = (clean - ablated).mean(0)
        assert np.abs(push).max() > 1e-4
        row = inner.row(c)
        for m in Move:
            assert row[f"push_{MOVES[m]}"] == pytest.approx(push[m], abs=1e-6)


# --------------------------------------------------------------------------- behaviour attribution


def test_behaviour_attribution_finds_planted_channel(up_states):
    table = behaviour_attribution(planted_up_model(), up_states, hook=LATE)
    assert table.channel[0] == UP_CHANNEL
    row = table.row(UP_CHANNEL)
    assert row["delta"] < -0.05 and row["frac_decreased"] == 1.0
    assert table.score[0] > 4 * table.score[1]
    assert table.summary["n_mazes"] == len(up_states) and table.summary["n_skipped"] == 0


def test_behaviour_attribution_random_model_has_no_winner(up_states):
    table = behaviour_attribution(random_model(0), up_states, hook=LATE)
    assert table.score[0] < 2 * table.score[1]


def test_behaviour_attribution_options(states, up_states):
    model = planted_up_model()
    some = behaviour_attribution(model, up_states, hook=LATE, channels=[UP_CHANNEL, 0], ablation="mean")
    assert sorted(some.channel.tolist()) == [0, UP_CHANNEL]
    assert some.channel[0] == UP_CHANNEL
    mixed = behaviour_attribution(model, states[:12], hook=LATE, channels=[0])
    assert mixed.summary["n_skipped"] == sum(cheese_ward_move(s) is None for s in states[:12])
    with pytest.raises(ValueError, match="out of range"):
        behaviour_attribution(model, up_states, hook=LATE, channels=[32])
    with pytest.raises(ValueError, match="decision square"):
        behaviour_attribution(model, [s for s in states if cheese_ward_move(s) is None][:2], hook=LATE)


# --------------------------------------------------------------------------- the table


def make_table() -> ChannelTable:
    return ChannelTable("demo", "embedder.relu3_out",
                        {"channel": np.array([0, 1, 2, 3]), "score": np.array([0.1, np.nan, 0.9, 0.1]),
                         "extra": np.array(["a", "b", "c", "d"])},
                        description="demo table", summary={"n_mazes": 4})


def test_channel_table_ranking_and_rows():
    table = make_table()
    assert table.channel.tolist() == [2, 0, 3, 1]  # score desc, ties by channel, NaN last
    assert table.columns == ("channel", "score", "extra")
    assert len(table) == 4 and table.rank(3) == 2
    assert table.top(2).channel.tolist() == [2, 0]
    assert table.top(2).summary == {"n_mazes": 4}
    rows = table.to_rows()
    assert rows[0] == {"channel": 2, "score": 0.9, "extra": "c"}
    assert isinstance(rows[0]["channel"], int) and isinstance(rows[0]["score"], float)
    assert table.row(0)["extra"] == "a"
    assert table["extra"].tolist() == ["c", "a", "d", "b"]
    with pytest.raises(KeyError, match="columns are"):
        table["nope"]
    with pytest.raises(KeyError):
        table.rank(9)
    with pytest.raises(ValueError):
        ChannelTable("x", "h", {"channel": np.arange(3)})


def test_channel_table_str():
    text = str(make_table())
    lines = text.splitlines()
    assert lines[0] == "demo @ embedder.relu3_out (n_mazes=4)"
    assert lines[1] == "demo table"
    assert lines[2].split() == ["rank", "channel", "score", "extra"]
    assert lines[3].split() == ["1", "2", "0.9", "c"]
    assert lines[-1].split() == ["4", "1", "nan", "b"]
    long = ChannelTable("m", "h", {"channel": np.arange(30), "score": np.arange(30.0)})
    assert "10 more rows" in str(long)
    assert repr(long) == "ChannelTable(m, h, 30 rows, columns=['channel', 'score'])"

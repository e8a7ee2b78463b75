"""Tests of mazeinterp.core.hooks: the activation cache, early stopping, the intervention context."""

from __future__ import annotations

import pytest
import torch

from mazeinterp.core.hooks import (
    ActivationCache,
    activations,
    can_forward_from,
    forward_from,
    intervene,
    render_states,
    run_batched_with_cache,
    run_states_with_cache,
    run_with_cache,
    to_model_input,
)
from mazeinterp.core.interventions import (
    AddVector,
    Clamp,
    Intervention,
    MeanAblate,
    Scale,
    ValidatedInterventions,
    ZeroAblate,
    validate_interventions,
)
from mazeinterp.core.model import ImpalaPolicy

HOOK = "embedder.block2.res1.resadd_out"
LATE = "embedder.relu3_out"




@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def no_hooks_left(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class Boom(Intervention):
    """An intervention whose edit raises."""

    def edit(self, act):
        raise RuntimeError("boom")


# --------------------------------------------------------------------------- cache


@pytest.mark.parametrize("scale", [1, 4])
def test_cache_shapes_for_every_hook_point(scale):
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=scale).eval()
    x = torch.rand(2, 3, 64, 64)
    (logits, value), cache = run_with_cache(model, x)
    expected = model.hook_points()
    assert list(cache) == list(expected)
    assert cache.shapes() == {name: (2, *shape) for name, shape in expected.items()}
    assert logits.shape == (2, 15) and value.shape == (2,)
    assert cache[HOOK].shape == (2, 32 * scale, 16, 16)
    assert cache[LATE].shape == (2, 32 * scale, 8, 8)
    assert all(not t.requires_grad for t in cache.values())
    torch.testing.assert_close(cache["fc_policy_out"], logits)
    assert no_hooks_left(model)


def test_cache_matches_plain_forward(model, x):
    (logits, value), cache = run_with_cache(model, x, [HOOK, "fc_value_out"])
    ref_logits, ref_value = model(x)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(value, ref_value)
    assert isinstance(cache, ActivationCache)
    assert len(cache) == 2 and set(cache) == {HOOK, "fc_value_out"}
    assert "ActivationCache(" in repr(cache)


def test_uint8_observations_are_converted(model, x):
    obs = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    _, cache = run_with_cache(model, obs.numpy(), [LATE])
    _, cache_t = run_with_cache(model, obs, [LATE])
    _, ref = run_with_cache(model, obs.permute(0, 3, 1, 2).float() / 255, [LATE])
    torch.testing.assert_close(cache[LATE], ref[LATE])
    torch.testing.assert_close(cache_t[LATE], ref[LATE])


def test_stop_early_ends_forward(model, x):
    calls = []
    handle = model.embedder.block3.conv.register_forward_hook(lambda *a: calls.append(1))
    try:
        outputs, cache = run_with_cache(model, x, ["embedder.block1.conv_out", HOOK], stop_early=True)
    finally:
        handle.remove()
    assert outputs is None
    assert calls == []  # block3 never ran
    _, full = run_with_cache(model, x, [HOOK])
    torch.testing.assert_close(cache[HOOK], full[HOOK])
    assert set(cache) == {"embedder.block1.conv_out", HOOK}
    assert no_hooks_left(model)


def test_stop_early_order_is_forward_order(model, x):
    """The last layer in forward order decides where to stop, whatever the order of the request."""
    _, cache = run_with_cache(model, x, [LATE, "embedder.block1.conv_out"], stop_early=True)
    assert set(cache) == {LATE, "embedder.block1.conv_out"}


def test_unknown_hook_is_keyerror_with_suggestion(model, x):
    with pytest.raises(KeyError, match="did you mean embedder.relu3_out"):
        run_with_cache(model, x, ["embedder.relu3"])
    _, cache = run_with_cache(model, x, [LATE], stop_early=True)
    with pytest.raises(KeyError, match="not in this cache"):
        cache["embedder.relu3"]
    assert no_hooks_left(model)


def test_cache_records_edited_activation(model, x):
    _, cache = run_with_cache(model, x, [HOOK], interventions=[ZeroAblate(HOOK, channels=[0])])
    assert torch.all(cache[HOOK][:, 0] == 0)


# --------------------------------------------------------------------------- hooks always removed


def test_hooks_removed_when_body_raises(model, x):
    with pytest.raises(RuntimeError, match="body"):
        with intervene(model, [ZeroAblate(HOOK), Scale(LATE, 2.0)]):
            assert not no_hooks_left(model)
            raise RuntimeError("body")
    assert no_hooks_left(model)


def test_hooks_removed_when_intervention_raises(model, x):
    with pytest.raises(RuntimeError, match="boom"):
        run_with_cache(model, x, [LATE], interventions=[Boom(HOOK)])
    assert no_hooks_left(model)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(model, [Boom(HOOK)]):
            model(x)
    assert no_hooks_left(model)


def test_hooks_removed_when_forward_raises(model):
    with pytest.raises(ValueError, match="expects float input"):
        run_with_cache(model, torch.zeros(1, 3, 32, 32), [HOOK], interventions=[ZeroAblate(LATE)])
    assert no_hooks_left(model)


def test_hooks_removed_after_stop_early(model, x):
    run_with_cache(model, x, [HOOK], stop_early=True, interventions=[ZeroAblate(LATE)])
    assert no_hooks_left(model)


# --------------------------------------------------------------------------- composition


def test_same_hook_composes_in_given_order(model, x):
    """[a, b] at one hook computes b(a(act)): Scale then Add ≠ Add then Scale."""
    _, clean = run_with_cache(model, x, [HOOK])
    act = clean[HOOK]
    ones = torch.ones(32, 16, 16)
    _, c1 = run_with_cache(model, x, [HOOK], interventions=[Scale(HOOK, 2.0), AddVector(HOOK, ones, 1.0)])
    _, c2 = run_with_cache(model, x, [HOOK], interventions=[AddVector(HOOK, ones, 1.0), Scale(HOOK, 2.0)])
    assert torch.equal(c1[HOOK], act * 2.0 + 1.0)
    assert torch.equal(c2[HOOK], (act + 1.0) * 2.0)


def test_later_intervention_overrides_earlier_on_overlap(model, x):
    _, cache = run_with_cache(model, x, [HOOK], interventions=[
        Clamp(HOOK, 1.0, channels=[3]), Clamp(HOOK, 7.0, channels=[3], pixels=[(2, 2)])])
    assert cache[HOOK][0, 3, 2, 2] == 7.0 and cache[HOOK][0, 3, 0, 0] == 1.0


def test_several_hooks_compose_in_one_pass(model, x):
    early = ZeroAblate(HOOK, channels=[1, 2])
    late = Clamp(LATE, 3.0, channels=[5])
    (logits, _), both = run_with_cache(model, x, [HOOK, LATE], interventions=[early, late])
    _, only_early = run_with_cache(model, x, [LATE], interventions=[early])
    assert torch.all(both[HOOK][:, 1:3] == 0)
    assert torch.equal(both[LATE], late(only_early[LATE]))
    ref_logits, _ = forward_from(model, LATE, late(only_early[LATE]))
    torch.testing.assert_close(logits, ref_logits)


def test_nested_contexts_apply_outer_first(model, x):
    _, clean = run_with_cache(model, x, [HOOK])
    with intervene(model, [Scale(HOOK, 2.0)]):
        with intervene(model, [AddVector(HOOK, torch.ones(32), 1.0)]):
            _, cache = run_with_cache(model, x, [HOOK])
        _, outer_only = run_with_cache(model, x, [HOOK])
    assert torch.equal(cache[HOOK], clean[HOOK] * 2.0 + 1.0)
    assert torch.equal(outer_only[HOOK], clean[HOOK] * 2.0)
    assert no_hooks_left(model)


def test_intervene_changes_plain_forward(model, x):
    ref, _ = model(x)
    with torch.no_grad(), intervene(model, [Clamp("fc_policy_out", 0.0)]):
        logits, _ = model(x)
    assert torch.all(logits == 0)
    after, _ = model(x)
    torch.testing.assert_close(after, ref)


# --------------------------------------------------------------------------- resuming


def test_forward_from_every_resumable_hook(model, x):
    (logits, value), cache = run_with_cache(model, x)
    resumable = [h for h in model.hook_points() if can_forward_from(h)]
    assert HOOK in resumable and LATE in resumable and "embedder.block1.conv_out" in resumable
    assert "embedder.block2.res1.relu1_out" not in resumable
    with torch.no_grad():
        for hook in resumable:
            out_logits, out_value = forward_from(model, hook, cache[hook])
            torch.testing.assert_close(out_logits, logits, msg=hook)
            torch.testing.assert_close(out_value, value, msg=hook)
    with pytest.raises(ValueError, match="residual branch"):
        forward_from(model, "embedder.block2.res1.conv1_out", cache["embedder.block2.res1.conv1_out"])


def test_run_states_with_cache(model, seeded_states):
    states = seeded_states[:5]
    (logits, value), cache = run_states_with_cache(model, states, [HOOK], batch_size=2)
    obs = render_states(states)
    (ref_logits, ref_value), ref = run_with_cache(model, obs, [HOOK])
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(cache[HOOK], ref[HOOK])
    outputs, cache = run_states_with_cache(model, states, [HOOK], stop_early=True)
    assert outputs is None and cache[HOOK].shape == (5, 32, 16, 16)


def test_batched_forward_takes_states_or_observations(model, seeded_states):
    states = seeded_states[:5]
    obs = render_states(states)  # uint8 (5, 64, 64, 3)
    x = to_model_input(model, obs)  # float (5, 3, 64, 64)
    _, whole = run_with_cache(model, obs, [HOOK, LATE])  # one batch of five
    scale = Scale(LATE, 2.0)
    _, edited = run_with_cache(model, obs, [LATE], interventions=[scale])
    for inputs in (states, obs, x):
        # batches of 2, 2 and 1 give each input the activations of the single pass, in order
        (logits, value), cache = run_batched_with_cache(model, inputs, [HOOK, LATE], batch_size=2, progress=False)
        assert logits.shape == (5, 15) and value.shape == (5,)
        for hook in (HOOK, LATE):
            torch.testing.assert_close(cache[hook], whole[hook])
        one = activations(model, LATE, inputs, batch_size=2, interventions=[scale], progress=False)
        torch.testing.assert_close(one, edited[LATE])
    assert run_states_with_cache is run_batched_with_cache
    empty = activations(model, HOOK, [], progress=False)
    assert empty.shape == (0,)
    # no inputs and no early stop: empty outputs, not None (the documented unpacking works)
    (logits, value), _ = run_batched_with_cache(model, [], progress=False)
    assert logits.shape == (0, 15) and value.shape == (0,)


def test_interventions_are_validated_once_per_call(model, seeded_states, validations):
    """intervene, run_with_cache and a batched pass of 3 batches each check every edit exactly once."""
    edits = [ZeroAblate(HOOK, channels=[1]), Scale(LATE, 2.0)]
    with intervene(model, edits):
        pass
    assert validations == edits
    validations.clear()
    run_with_cache(model, torch.zeros(1, 3, 64, 64), [LATE], interventions=edits)
    assert validations == edits
    validations.clear()
    run_batched_with_cache(model, seeded_states[:6], [LATE], interventions=edits, batch_size=2)
    assert validations == edits, "one check per call, not per batch"
    validations.clear()
    checked = validate_interventions(model, edits)
    with intervene(model, checked):
        pass
    assert validations == edits, "validated ones are not checked again"


def test_validated_interventions_are_not_trusted_for_another_model() -> None:
    small, wide = ImpalaPolicy(scale=1), ImpalaPolicy(scale=2)
    checked = validate_interventions(small, MeanAblate(LATE, torch.zeros(32, 8, 8)))
    assert validate_interventions(small, checked) is checked
    with pytest.raises(ValueError, match=r"mean has shape \(32, 8, 8\), hook point 'embedder.relu3_out' has \(64, 8, 8\)"):
        with intervene(wide, checked):
            pass
    with pytest.raises(TypeError, match="made by validate_interventions"):
        ValidatedInterventions(wide, list(checked))
    assert type(checked[:1]) is tuple, "a slice is a plain tuple, checked again where it is used"


def test_to_model_input_converts_observations_once(model, seeded_states):
    obs = render_states(seeded_states[:2])
    x = to_model_input(model, obs)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 64, 64)
    torch.testing.assert_close(x, torch.from_numpy(obs).permute(0, 3, 1, 2).float() / 255)
    assert to_model_input(model, x) is x  # float input on the model's device is used as it is
    with pytest.raises(TypeError, match="list"):
        to_model_input(model, [obs])


def test_the_package_calls_the_batched_forward_by_its_own_name() -> None:
    """``run_states_with_cache`` is kept for users only: no module of the package uses the earlier name."""
    import ast
    from pathlib import Path

    import mazeinterp

    root = Path(mazeinterp.__file__).parent
    users = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            field = {ast.Name: "id", ast.Attribute: "attr", ast.alias: "name"}.get(type(node))
            stored = isinstance(getattr(node, "ctx", None), ast.Store)  # the alias's own definition
            if field and getattr(node, field) == "run_states_with_cache" and not stored:
                users.append(f"{path.relative_to(root)}:{node.lineno}")
    assert users == []


def test_the_shared_renderers_env_is_closed_when_the_process_ends() -> None:
    import subprocess
    import sys

    child = """
from mazeinterp.core.hooks import render_states
from mazeinterp.maze.env import MazeEnv

close = MazeEnv.close
def counted_close(self):
    print("closed", self.num, flush=True)
    close(self)
MazeEnv.close = counted_close

with MazeEnv.from_seeds([0, 1]) as env:
    states = env.get_states()
print(render_states(states).shape, flush=True)
"""
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # the env of the two seeds, closed by its block; then the shared renderer's 64 envs, closed at exit
    assert run.stdout.split("\n") == ["closed 2", "(2, 64, 64, 3)", "closed 64", ""]

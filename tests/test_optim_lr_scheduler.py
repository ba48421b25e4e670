"""Learning-rate schedules against hand-computed values, and schedulers driving optimizers."""

import math

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.optim as optim

MAX_LR, WARMUP, TOTAL, MIN_LR = 6e-4, 10, 110, 6e-5

#: step -> lr for warmup 10, total 110, 6e-4 down to 6e-5, worked out by hand.
WARMUP_COSINE_VALUES = {
    0: 6e-4 / 11,                                  # (0 + 1)/(10 + 1) of the peak
    4: 6e-4 * 5 / 11,
    9: 6e-4 * 10 / 11,
    10: 6e-4,                                      # cos 0 = 1: the peak
    35: 6e-5 + 0.5 * (1 + math.sqrt(0.5)) * 5.4e-4,  # a quarter of the way: cos(π/4) = √½
    60: 6e-5 + 0.5 * 5.4e-4,                       # half way: cos(π/2) = 0
    85: 6e-5 + 0.5 * (1 - math.sqrt(0.5)) * 5.4e-4,
    110: 6e-5,                                     # cos π = −1: the floor
    1000: 6e-5,
}


@pytest.mark.parametrize("step", WARMUP_COSINE_VALUES)
def test_warmup_cosine_lr_at_hand_picked_steps(step):
    lr = optim.warmup_cosine_lr(step, MAX_LR, WARMUP, TOTAL, MIN_LR)
    assert lr == pytest.approx(WARMUP_COSINE_VALUES[step], rel=1e-12)


D_MODEL, NOAM_WARMUP = 512, 4000

#: step -> d_model^-½ · min(step^-½, step · warmup^-3/2), simplified by hand: below the
#: warmup it is step / (warmup · √(d_model · warmup)), above it 1 / √(d_model · step).
NOAM_VALUES = {
    1: 1 / (4000 * math.sqrt(512 * 4000)),         # 1.746928e-7
    1000: 1000 / (4000 * math.sqrt(512 * 4000)),   # 1.746928e-4
    4000: 1 / math.sqrt(512 * 4000),               # the peak, 6.987712e-4
    16000: 1 / math.sqrt(512 * 16000),             # half the peak, 3.493856e-4
}


@pytest.mark.parametrize("factor", [1.0, 2.0])
@pytest.mark.parametrize("step", NOAM_VALUES)
def test_noam_lr_at_hand_picked_steps(step, factor):
    lr = optim.noam_lr(step, D_MODEL, NOAM_WARMUP, factor)
    assert lr == pytest.approx(factor * NOAM_VALUES[step], rel=1e-12)


def test_noam_lr_peaks_at_the_warmup_step():
    lrs = [optim.noam_lr(s, D_MODEL, NOAM_WARMUP) for s in (3999, 4000, 4001)]
    assert lrs[1] > lrs[0] and lrs[1] > lrs[2]
    assert optim.noam_lr(36 * 4000, D_MODEL, NOAM_WARMUP) == pytest.approx(lrs[1] / 6)


def two_group_sgd(lrs=(1.0, 0.1)):
    params = [sl.tensor(np.zeros(3), requires_grad=True) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    return optim.SGD(groups, lr=0.5), params


def test_warmup_cosine_sets_each_groups_lr_and_the_update_uses_it():
    optimizer, params = two_group_sgd()
    scheduler = optim.WarmupCosine(optimizer, warmup_steps=3, total_steps=8, min_lr_ratio=0.2)
    used = []
    for step in range(12):
        expected = [optim.warmup_cosine_lr(step, base, 3, 8, 0.2 * base) for base in (1.0, 0.1)]
        assert scheduler.get_last_lr() == pytest.approx(expected, rel=1e-12)
        assert [g["lr"] for g in optimizer.param_groups] == scheduler.get_last_lr()
        used.append(expected)
        for p in params:
            p.grad = np.ones(3)
        optimizer.step()
        scheduler.step()
    # With ∂L/∂θ = 1, SGD moves each parameter by minus the sum of the rates it was given.
    for p, total in zip(params, np.sum(used, axis=0)):
        np.testing.assert_allclose(p.numpy(), -total, rtol=1e-12)
    assert scheduler.get_last_lr() == pytest.approx([0.2, 0.02])


def test_noam_schedule_replaces_the_lr_with_the_formula_from_step_one():
    optimizer, _ = two_group_sgd()
    scheduler = optim.NoamSchedule(optimizer, d_model=64, warmup_steps=10, factor=2.0)
    assert scheduler.get_last_lr() == [optim.noam_lr(1, 64, 10, 2.0)] * 2
    scheduler.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [2.0 * 3 / (10 * math.sqrt(64 * 10))] * 2


def test_scheduler_state_dict_resumes_the_same_rates():
    optimizer, _ = two_group_sgd()
    scheduler = optim.WarmupCosine(optimizer, 4, 20)
    for _ in range(7):
        scheduler.step()
    state = scheduler.state_dict()
    assert state == {"last_step": 7, "base_lrs": [1.0, 0.1]}
    expected = [scheduler.get_last_lr()]
    for _ in range(5):
        scheduler.step()
        expected.append(scheduler.get_last_lr())

    fresh_optimizer, _ = two_group_sgd(lrs=(9.0, 9.0))
    fresh = optim.WarmupCosine(fresh_optimizer, 4, 20)
    fresh.load_state_dict(state)
    resumed = [fresh.get_last_lr()]
    for _ in range(5):
        fresh.step()
        resumed.append(fresh.get_last_lr())
    assert resumed == expected


BAD_SCHEDULES = {
    "negative warmup": (lambda o: optim.WarmupCosine(o, -1, 10), ValueError,
                        r"WarmupCosine: warmup_steps=-1; expected an integer ≥ 0"),
    "fractional total": (lambda o: optim.WarmupCosine(o, 1, 10.5), ValueError,
                         r"total_steps=10.5 \(a float\); expected an integer ≥ 0"),
    "min ratio above 1": (lambda o: optim.WarmupCosine(o, 1, 10, min_lr_ratio=1.5), ValueError,
                          r"min_lr_ratio=1.5; expected a finite number in \[0, 1\]"),
    "zero d_model": (lambda o: optim.NoamSchedule(o, 0, 4000), ValueError,
                     "NoamSchedule: d_model=0; expected an integer ≥ 1"),
    "zero warmup": (lambda o: optim.NoamSchedule(o, 512, 0), ValueError,
                    "warmup_steps=0; expected an integer ≥ 1"),
    "negative factor": (lambda o: optim.NoamSchedule(o, 512, 10, factor=-1.0), ValueError,
                        "factor=-1.0; expected a finite number > 0"),
    "not an optimizer": (lambda o: optim.WarmupCosine(o.param_groups, 1, 10), TypeError,
                         "expected a scratchlm.optim optimizer, got list"),
    "noam step 0": (lambda o: optim.noam_lr(0, 512, 4000), ValueError,
                    "noam_lr: step=0; expected an integer ≥ 1"),
    "negative cosine step": (lambda o: optim.warmup_cosine_lr(-1, 1.0, 1, 10, 0.1), ValueError,
                             "warmup_cosine_lr: step=-1; expected an integer ≥ 0"),
}


@pytest.mark.parametrize("case", BAD_SCHEDULES)
def test_bad_schedule_arguments_raise_clear_errors(case):
    make, error, message = BAD_SCHEDULES[case]
    optimizer, _ = two_group_sgd()
    with pytest.raises(error, match=message):
        make(optimizer)


def test_scheduler_load_state_dict_checks_the_group_count():
    scheduler = optim.WarmupCosine(two_group_sgd()[0], 4, 20)
    with pytest.raises(ValueError, match=r"WarmupCosine.load_state_dict: the state dict has "
                       r"1 base learning rate\(s\) but the optimizer has 2"):
        scheduler.load_state_dict({"last_step": 3, "base_lrs": [1.0]})

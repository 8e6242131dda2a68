"""Scoring a random model: three metrics (expected, majority, all-draws), valid intervals, and
a worst case chosen on selection passes and reported on independent evaluation passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from test_results_tables import fake_run

from robbench.records.scoring import accuracy_fields, mean_interval, per_example, wilson_interval
from robbench.report.worst_case import worst_case_frame

LABEL = 0
# four examples, R = 4 passes each (1 = correct): all, half (a tie), three of four, none
CORRECT = np.array([[1, 1, 1, 0],
                    [1, 1, 1, 0],
                    [1, 0, 1, 0],
                    [1, 0, 0, 0]], dtype=bool)


def preds_of(correct: np.ndarray) -> np.ndarray:
    return np.where(correct, LABEL, 9)


def test_the_three_metrics_and_the_majority_tie_rule_on_hand_made_outcomes():
    assert per_example(CORRECT, "expected").tolist() == [1.0, 0.5, 0.75, 0.0]
    assert per_example(CORRECT, "majority").tolist() == [1.0, 0.0, 1.0, 0.0]  # tie: not robust
    assert per_example(CORRECT, "all_draws").tolist() == [1.0, 0.0, 0.0, 0.0]
    fields = accuracy_fields(preds_of(CORRECT), np.zeros(4, dtype=int))
    assert fields["accuracy"] == pytest.approx(2.25 / 4)
    assert fields["majority"] == 0.5 and fields["all_draws"] == 0.25
    # fractional scores: Student's t on the per-example scores
    scores = np.array([1.0, 0.5, 0.75, 0.0])
    half = stats.t.ppf(0.975, 3) * scores.std(ddof=1) / math.sqrt(4)
    assert fields["ci_low"] == pytest.approx(max(0.0, scores.mean() - half))
    assert fields["ci_high"] == pytest.approx(min(1.0, scores.mean() + half))
    # 0/1 outcomes: Wilson
    assert (fields["majority_low"], fields["majority_high"]) == wilson_interval(2, 4)
    assert (fields["all_draws_low"], fields["all_draws_high"]) == wilson_interval(1, 4)


def test_one_pass_makes_the_three_metrics_coincide():
    fields = accuracy_fields(np.array([[0, 9, 0, 0]]), np.zeros(4, dtype=int))
    assert fields["accuracy"] == fields["majority"] == fields["all_draws"] == 0.75
    assert (fields["ci_low"], fields["ci_high"]) == wilson_interval(3, 4)


@pytest.mark.parametrize("scores", [np.ones(5), np.zeros(30), np.array([0.3, 0.3, 0.3])])
def test_the_interval_contains_the_mean_and_stays_in_0_1(scores):
    low, high = mean_interval(scores)
    assert 0.0 <= low <= scores.mean() <= high <= 1.0
    assert high > low  # never a zero-width claim


def test_the_worst_case_chooses_on_selection_passes_and_reports_evaluation_ones(tmp_path):
    # Example 0: attack a looks worst on its selection passes (0 of 2 correct), b best; the
    # reported passes are a's evaluation passes (2 of 2 correct), not the lower b ones.
    # Example 1: b looks worst; its evaluation passes (1 of 2) are reported.
    run = fake_run(tmp_path, "r", {
        ("shortrun", "a", 0.1): [[0, 1], [0, 1]],
        ("shortrun", "b", 0.1): [[9, 9], [9, 1]],
    }, [0, 1], selection={
        ("shortrun", "a", 0.1): [[9, 1], [9, 1]],
        ("shortrun", "b", 0.1): [[0, 9], [0, 9]],
    })
    row = worst_case_frame([run]).iloc[0]
    assert row["scoring"] == "disjoint" and row["attacks"] == "a+b"
    assert row["accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert row["all_draws"] == pytest.approx(0.5) and row["majority"] == pytest.approx(0.5)
    low, high = mean_interval(np.array([1.0, 0.5]))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def _noise_passes(rng: np.random.Generator, p_correct: float, draws: int,
                  n: int) -> list[list[int]]:
    """Predictions of a model right with probability ``p_correct`` on every example (label 0)."""
    return np.where(rng.random((draws, n)) < p_correct, 0, 1).tolist()


def test_a_pure_noise_model_is_half_robust_under_the_new_rule_not_under_the_old(tmp_path):
    """A model right on every example with probability 1/2 whatever its input, "attacked" by
    20 attacks that change nothing: choosing the minimum of each example's 10-pass scores and
    reporting those passes sinks far below 1/2; choosing on selection passes and reporting
    fresh ones is unbiased: over 20 repetitions its mean stays at 1/2 (a standard error of
    the mean is about 0.002) and its 95% intervals cover 1/2 about as often as they should."""
    rng = np.random.default_rng(0)
    n, draws, attacks, repeats = 400, 10, 20, 20
    estimates, covered = [], 0
    for k in range(repeats):
        cells = {("shortrun", f"noop{i:02d}", 0.1): _noise_passes(rng, 0.5, draws, n)
                 for i in range(attacks)}
        if k == 0:
            old = worst_case_frame([fake_run(tmp_path, "old", cells, [0] * n)]).iloc[0]
            assert old["scoring"] == "same-draws" and old["accuracy"] < 0.3
        selection = {key: _noise_passes(rng, 0.5, draws, n) for key in cells}
        new = worst_case_frame([fake_run(tmp_path, f"new{k}", cells, [0] * n,
                                         selection)]).iloc[0]
        assert new["scoring"] == "disjoint"
        estimates.append(new["accuracy"])
        covered += new["ci_low"] <= 0.5 <= new["ci_high"]
    assert abs(np.mean(estimates) - 0.5) < 0.01
    assert covered >= 16  # 19 expected; 16 or fewer has probability below 2%


def test_noise_in_the_choice_does_not_make_the_worst_case_weaker_than_one_attack(tmp_path):
    """One attack leaves every example right with probability 0.3, six weaker ones 0.4: on 10
    selection passes the per-example choice often picks a weaker attack (its accuracy is
    about 0.33), so always using the strong one is the better attacker, and the worst case
    must be that attack's evaluation passes, not the noisy choice."""
    rng = np.random.default_rng(1)
    n, draws = 400, 10
    cells = {("shortrun", "strong", 0.1): _noise_passes(rng, 0.3, draws, n)} | {
        ("shortrun", f"weak{i}", 0.1): _noise_passes(rng, 0.4, draws, n) for i in range(6)}
    selection = {key: _noise_passes(rng, 0.3 if key[1] == "strong" else 0.4, draws, n)
                 for key in cells}
    row = worst_case_frame([fake_run(tmp_path, "r", cells, [0] * n, selection)]).iloc[0]
    strong = np.mean(np.asarray(cells[("shortrun", "strong", 0.1)]) == 0)
    assert row["accuracy"] == pytest.approx(strong)  # the strong attack's evaluation passes

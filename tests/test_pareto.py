import doctest

import numpy as np
import pytest

from skprune import pareto
from skprune.pareto import (
    dichotomic_weight,
    find_knee,
    knee_chord_distance,
    knee_ideal_point,
    knee_one_se,
    log_grid,
    normalize,
    pareto_front,
    propose_bisection,
    propose_dichotomic,
)


def test_pareto_doctests_pass():
    failures, _ = doctest.testmod(pareto, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_pareto_front_keeps_non_dominated_sorted_by_complexity():
    points = np.array([[0.1, 5.0], [0.3, 1.0], [0.2, 6.0], [0.5, 0.0], [0.4, 2.0], [0.1, 7.0]])
    front = pareto_front(points)
    assert front.tolist() == [3, 1, 0]
    kept = points[front]
    assert np.all(np.diff(kept[:, 1]) > 0) and np.all(np.diff(kept[:, 0]) < 0)
    for i in set(range(len(points))) - set(front):
        assert np.any(np.all(points[front] <= points[i], axis=1))


def test_pareto_front_drops_nan_and_duplicates():
    points = [[np.nan, 1.0], [0.2, 1.0], [0.2, 1.0], [0.1, np.nan]]
    assert pareto_front(points).tolist() == [1]
    assert pareto_front(np.empty((0, 2))).size == 0


def test_normalize_maps_columns_to_unit_interval():
    z = normalize([[2.0, 10.0], [4.0, 30.0], [3.0, 20.0]])
    assert z.min(axis=0).tolist() == [0.0, 0.0] and z.max(axis=0).tolist() == [1.0, 1.0]


def test_knee_chord_distance_finds_the_corner_of_an_l():
    # loss falls steeply, then flattens: the corner is at complexity 0.2.
    front = [[1.0, 0.0], [0.5, 0.1], [0.05, 0.2], [0.03, 0.6], [0.0, 1.0]]
    assert knee_chord_distance(front) == 2


def test_knee_chord_distance_degenerate_fronts():
    assert knee_chord_distance([[0.3, 0.4]]) == 0
    assert knee_chord_distance([[0.3, 0.4], [0.3, 0.4]]) == 0


def test_knee_ideal_point_is_closest_to_the_origin():
    front = [[1.0, 0.0], [0.3, 0.25], [0.2, 0.6], [0.0, 1.0]]
    assert knee_ideal_point(front) == 1


#: Two folds' losses and the densities of four λ, from dense to sparse: mean
#: losses 0.13, 0.15, 0.32, 1.0; the standard error of the best, |0.10 −
#: 0.16| / 2 = 0.03, covers 0.15 but not 0.32.
_FOLD_LOSSES = np.array([[0.10, 0.16], [0.14, 0.16], [0.30, 0.34], [0.90, 1.10]])
_POINTS = np.column_stack([_FOLD_LOSSES.mean(axis=1), [1.0, 0.6, 0.2, 0.05]])
_SE = _FOLD_LOSSES.std(axis=1, ddof=1) / np.sqrt(2)


def test_knee_one_se_and_chord_disagree_on_a_known_front():
    front, se = _POINTS[::-1], _SE[::-1]  # by complexity
    assert se[-1] == pytest.approx(0.03)
    assert knee_chord_distance(front) == 1  # (0.32, 0.2)
    assert knee_one_se(front, se) == 2  # (0.15, 0.6): 0.15 <= 0.13 + 0.03


def test_knee_one_se_takes_the_sparsest_within_one_standard_error():
    front = [[0.5, 0.1], [0.2, 0.4], [0.15, 0.5], [0.10, 0.9]]
    assert knee_one_se(front, [0, 0, 0, 0.05]) == 2  # 0.15 <= 0.10 + 0.05
    assert knee_one_se(front, [0, 0, 0, 0.0499]) == 3
    assert knee_one_se(front, [0, 0, 0, 0.4]) == 0
    assert knee_one_se(front, [np.nan] * 4) == 3  # one fold: no error, the best loss


def test_find_knee_applies_its_rule_and_standard_errors():
    front = [[1.0, 0.0], [0.3, 0.3], [0.02, 0.55], [0.0, 1.0]]  # chord: 0.02, ideal: 0.3
    assert find_knee(front)[1] == 2
    assert find_knee(front, rule=knee_ideal_point)[1] == 1
    assert find_knee(_POINTS)[1] == 2
    assert find_knee(_POINTS, rule=knee_one_se, loss_se=_SE)[1] == 1
    # A collapsed point is left out of the rule: without the sparsest the chord moves.
    assert find_knee(_POINTS, collapsed=[0, 0, 0, 1])[1] == 1


def test_dichotomic_weight_equalises_the_weighted_sum():
    p, q = np.array([0.8, 10.0]), np.array([0.1, 300.0])
    lam = dichotomic_weight(p, q)
    assert 0 < lam < 1
    assert (1 - lam) * p[0] + lam * p[1] == pytest.approx((1 - lam) * q[0] + lam * q[1])
    assert np.isnan(dichotomic_weight([1.0, 1.0], [2.0, 2.0]))


def test_propose_dichotomic_classical_skips_known_weights():
    front = [[0.8, 10.0], [0.1, 300.0]]
    lam = dichotomic_weight(*front)
    assert propose_dichotomic(front, [0.0, 0.5], (0.0, 0.5)) == [lam]
    assert propose_dichotomic(front, [lam + 5e-4], (0.0, 0.5)) == []


def test_propose_dichotomic_stochastic_draws_around_the_nearest_weight():
    front = [[0.8, 10.0], [0.1, 300.0]]
    hat = dichotomic_weight(*front) + 5e-4
    draws = [
        propose_dichotomic(front, [hat], (0.0, 0.5), np.random.default_rng(s))[0] for s in range(20)
    ]
    assert all(0.9 * hat <= d <= 1.1 * hat for d in draws)
    assert len(set(draws)) == 20
    again = propose_dichotomic(front, [hat], (0.0, 0.5), np.random.default_rng(0))[0]
    assert again == draws[0]


def test_propose_bisection_splits_next_to_the_knee_in_log_space():
    new = propose_bisection([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], 1e-3)
    assert sorted(new) == pytest.approx([10**-3.5, 10**-2.5])
    assert propose_bisection([1e-5, 1e-4, 1e-3], 1e-3, n_new=2) == pytest.approx([10**-3.5])


def test_propose_bisection_prefers_the_larger_trade_off_change():
    points = [[0.1, 0.9], [0.12, 0.5], [2.0, 0.0]]
    new = propose_bisection([1e-4, 1e-3, 1e-2], 1e-3, points, n_new=1)
    assert new == pytest.approx([10**-2.5])


def test_propose_bisection_stops_on_resolved_intervals_and_handles_zero():
    assert propose_bisection([1e-3, 1.01e-3, 1.02e-3], 1.01e-3) == []
    # Half a decade on each side is resolved at the default; 0.4 decade is not.
    assert propose_bisection([1e-4, 10**-3.5, 1e-3], 10**-3.5) == []
    assert len(propose_bisection([1e-4, 10**-3.5, 1e-3], 10**-3.5, resolution=0.4)) == 2
    assert propose_bisection([1e-4, 10**-3.5, 1e-2], 10**-3.5) == pytest.approx([10**-2.75])
    assert propose_bisection([0.0, 1e-2], 0.0) == pytest.approx([5e-3])


def test_log_grid_spans_the_interval():
    grid = log_grid(1e-5, 1e-1, 9)
    assert grid[0] == pytest.approx(1e-5) and grid[-1] == pytest.approx(1e-1)
    assert np.allclose(np.diff(np.log10(grid)), 0.5)
    assert log_grid(0.0, 1e-2, 4)[0] == 0.0

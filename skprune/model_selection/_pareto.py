"""Pareto fronts of loss against complexity, their knees, and where to look next.

Pure functions behind :class:`~skprune.ParetoSearchCV`. A point is a pair
``(loss, complexity)``, both minimised: the biobjective problem (6) of Reiners
et al., ``min (E(w), Ω(w))``, seen through the weighted-sum scalarisation (7)
``(1 − λ)·E + λ·Ω``.

* :func:`pareto_front` keeps the non-dominated points (Reiners §2), sorted by
  complexity as in Algorithm 3, line 7;
* :func:`knee_chord_distance`, :func:`knee_ideal_point` and
  :func:`knee_one_se` pick a knee (Reiners §5; Das 1999 for the chord,
  Kneedle for the normalisation; Breiman et al. 1984 for one standard error);
* :func:`dichotomic_weight`, :func:`propose_dichotomic` and
  :func:`propose_bisection` propose the next λ values (Reiners §5,
  Algorithm 3 and the bisection search of §6.3.2).
"""

import numpy as np

__all__ = [
    "KNEE_RULES",
    "pareto_front",
    "normalize",
    "knee_chord_distance",
    "knee_ideal_point",
    "knee_one_se",
    "knee_tolerance",
    "find_knee",
    "dichotomic_weight",
    "propose_dichotomic",
    "propose_bisection",
    "log_grid",
]


def pareto_front(points):
    """Indices of the non-dominated points, sorted by complexity (then loss).

    A point ``p`` is dominated when another point ``q`` has ``q <= p`` in both
    objectives and ``q < p`` in at least one (Reiners §2). Rows holding NaN are
    dropped; of identical points the first is kept.

    Parameters
    ----------
    points : array-like of shape (n_points, 2)
        ``(loss, complexity)`` pairs, both minimised.

    Returns
    -------
    indices : ndarray of int
        Rows of ``points`` on the front, by increasing complexity.

    Examples
    --------
    >>> pts = [[0.1, 5.0], [0.3, 1.0], [0.2, 6.0], [0.5, 0.0], [0.3, 1.0]]
    >>> pareto_front(pts)
    array([3, 1, 0])
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    finite = np.flatnonzero(np.isfinite(points).all(axis=1))
    # Sorted by complexity, then loss: a point is on the front iff its loss is
    # strictly below the loss of every point before it.
    order = finite[np.lexsort((points[finite, 0], points[finite, 1]))]
    front, best_loss = [], np.inf
    for i in order:
        if points[i, 0] < best_loss:
            front.append(i)
            best_loss = points[i, 0]
    return np.asarray(front, dtype=int)


def normalize(points):
    """Scale each column of ``points`` to [0, 1] (a constant column becomes 0).

    Examples
    --------
    >>> normalize([[1.0, 10.0], [3.0, 10.0], [2.0, 10.0]]).tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    low, span = points.min(axis=0), np.ptp(points, axis=0)
    return (points - low) / np.where(span > 0, span, 1.0)


def knee_chord_distance(front, loss_se=None):
    """The point farthest from the chord between the front's two extremes.

    On axes normalised to [0, 1] (as Kneedle does), the chord joins the
    sparsest and the most accurate point; the knee is the point of largest
    distance to it — the normal-boundary-intersection knee of Das (1999),
    Reiners ref. [9]. Ties go to the sparser point.

    Parameters
    ----------
    front : array-like of shape (n_points, 2)
        Non-dominated ``(loss, complexity)`` pairs sorted by complexity.
    loss_se : None
        Unused: the rules share the signature of :func:`knee_one_se`.

    Returns
    -------
    index : int

    Examples
    --------
    >>> knee_chord_distance([[1.0, 0.0], [0.2, 0.3], [0.1, 0.6], [0.0, 1.0]])
    1
    """
    z = normalize(front)
    a, b = z[0], z[-1]
    chord = b - a
    length = np.hypot(*chord)
    if length == 0:
        return 0
    # |cross(chord, z - a)| / |chord| is the distance of each point to the line.
    dist = np.abs(chord[0] * (z[:, 1] - a[1]) - chord[1] * (z[:, 0] - a[0])) / length
    return int(np.argmax(dist))


def knee_ideal_point(front, loss_se=None):
    """The point closest to the ideal point (both objectives at their minimum).

    Distances are Euclidean on axes normalised to [0, 1], where the ideal
    point is the origin. ``loss_se`` is unused, as in
    :func:`knee_chord_distance`.

    Examples
    --------
    >>> knee_ideal_point([[1.0, 0.0], [0.3, 0.2], [0.1, 0.6], [0.0, 1.0]])
    1
    """
    z = normalize(front)
    return int(np.argmin(np.hypot(z[:, 0], z[:, 1])))


def knee_one_se(front, loss_se):
    """The sparsest point within one standard error of the smallest loss.

    The one-standard-error rule of CART (Breiman, Friedman, Olshen and Stone
    1984, §3.4.3) and glmnet's ``lambda.1se`` (Hastie, Tibshirani and
    Friedman, *The Elements of Statistical Learning*, 2nd ed., §7.10): with
    ``L_i`` the mean loss over the folds and ``s_i`` its standard error (the
    sample standard deviation over the folds, ``ddof=1``, divided by
    ``√n_folds``), and ``m = argmin_i L_i``,

    ``knee = argmin { C_i : L_i <= L_m + s_m }``,

    the least complex model the folds cannot tell apart from the best one.

    Parameters
    ----------
    front : array-like of shape (n_points, 2)
        Non-dominated ``(loss, complexity)`` pairs sorted by complexity.
    loss_se : array-like of shape (n_points,)
        The standard error of each point's loss; NaN (one fold) counts as 0.

    Returns
    -------
    index : int

    Examples
    --------
    >>> front = [[0.9, 0.0], [0.30, 0.1], [0.21, 0.3], [0.20, 0.9]]
    >>> knee_one_se(front, [0.0, 0.02, 0.02, 0.02])
    2
    >>> knee_one_se(front, [0.0, 0.02, 0.02, 0.12])
    1
    """
    front = np.asarray(front, dtype=float).reshape(-1, 2)
    se = np.nan_to_num(np.asarray(loss_se, dtype=float), nan=0.0)
    best = int(np.argmin(front[:, 0]))
    within = np.flatnonzero(front[:, 0] <= front[best, 0] + se[best])
    return int(within[np.argmin(front[within, 1])])


def knee_tolerance(front, tolerance):
    """The least complex point whose loss is within ``tolerance`` of the smallest.

    ``knee = argmin { C_i : L_i <= min_j L_j + tolerance }``: "the cheapest
    model within one point of the best accuracy" is ``tolerance=0.01`` on the
    error rate. ``tolerance`` is in the loss's units (of the search's
    ``scoring``); 0 picks the point of smallest loss.

    Parameters
    ----------
    front : array-like of shape (n_points, 2)
        ``(loss, complexity)`` pairs.
    tolerance : float >= 0

    Returns
    -------
    index : int

    Examples
    --------
    >>> front = [[0.30, 1e3], [0.05, 2e4], [0.045, 6e4], [0.04, 2e5]]
    >>> knee_tolerance(front, 0.01)
    1
    >>> knee_tolerance(front, 0.0)
    3
    >>> knee_tolerance(front, 1.0)
    0
    """
    front = np.asarray(front, dtype=float).reshape(-1, 2)
    within = np.flatnonzero(front[:, 0] <= np.min(front[:, 0]) + tolerance)
    return int(within[np.argmin(front[within, 1])])


def find_knee(points, collapsed=None, rule=knee_chord_distance, loss_se=None):
    """The front of ``points`` and the row of its knee.

    A collapsed point (a network with every weight zero) stays on the front as
    its sparse extreme but is left out of the knee rule, unless every front
    point collapsed.

    Parameters
    ----------
    points : array-like of shape (n_points, 2)
        ``(loss, complexity)`` rows.
    collapsed : array-like of bool or None, default=None
        Which rows are collapsed networks.
    rule : callable, default=knee_chord_distance
        ``rule(front) -> index into front``, or ``rule(front, loss_se)`` when
        ``loss_se`` is given (as :func:`knee_one_se` needs).
    loss_se : array-like of shape (n_points,) or None, default=None
        Standard error of each row's loss, passed to the rule for the front.

    Returns
    -------
    front : ndarray of int
        The rows on the front, by increasing complexity.
    knee : int
        The knee's row of ``points``.

    Examples
    --------
    >>> pts = [[2.3, 0.0], [0.9, 0.1], [0.2, 0.3], [0.15, 0.7], [0.1, 1.0]]
    >>> front, knee = find_knee(pts, collapsed=[True, False, False, False, False])
    >>> front.tolist(), knee
    ([0, 1, 2, 3, 4], 2)
    >>> find_knee(pts, rule=knee_ideal_point)[1]
    2
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    front = pareto_front(points)
    if front.size == 0:
        raise ValueError("No finite point: every candidate fit failed; no front to search.")
    collapsed = np.zeros(len(points), bool) if collapsed is None else np.asarray(collapsed, bool)
    alive = front[~collapsed[front]]
    candidates = alive if alive.size else front
    if loss_se is None:
        k = rule(points[candidates])
    else:
        k = rule(points[candidates], np.asarray(loss_se, dtype=float)[candidates])
    if not isinstance(k, (int, np.integer)) or not 0 <= k < len(candidates):
        raise ValueError(
            f"The 'knee' callable must return an index into the front of "
            f"{len(candidates)} points. Got {k!r} instead."
        )
    return front, int(candidates[k])


def dichotomic_weight(p, q):
    """The weight λ at which the scalarisation (7) ranks ``p`` and ``q`` equal.

    Solves ``(1 − λ)·E_p + λ·Ω_p = (1 − λ)·E_q + λ·Ω_q``: with
    ``diff = q − p``, ``λ = −diff_1 / (diff_2 − diff_1)`` (Reiners, Algorithm 3,
    line 11). For two neighbouring front points it lies in (0, 1).

    Examples
    --------
    >>> round(dichotomic_weight([0.5, 0.0], [0.1, 400.0]), 6)
    0.000999
    >>> round(dichotomic_weight([1.0, 0.0], [0.0, 1.0]), 3)
    0.5
    """
    diff = np.asarray(q, dtype=float) - np.asarray(p, dtype=float)
    denominator = diff[1] - diff[0]
    if denominator == 0:
        return float("nan")
    return float(-diff[0] / denominator)


def propose_dichotomic(front, lams, interval, rng=None, tol=1e-3):
    """New weights from each pair of neighbouring front points (Algorithm 3).

    Parameters
    ----------
    front : array-like of shape (n_points, 2)
        ``(E, Ω)`` pairs, non-dominated and sorted by Ω (lines 6–7).
    lams : sequence of float
        The weights already in ``list``.
    interval : (float, float)
        ``(λ1, λ2)``, the initial weights.
    rng : numpy.random.Generator or None, default=None
        None gives the classical dichotomic search: a weight within ``tol`` of
        one in ``lams`` is dropped. With a generator it is replaced by a random
        λ̃ in ``[max(0.9·λ̂, λ1), min(1.1·λ̂, λ2)]`` around the nearest such λ̂
        (lines 12–14, the stochastic dichotomic search).
    tol : float, default=1e-3
        The closeness test of line 12.

    Returns
    -------
    list of float
        The new weights, in the order of the front, without duplicates.

    Examples
    --------
    >>> propose_dichotomic([[0.5, 0.0], [0.1, 400.0]], [1e-5, 1e-1], (1e-5, 1e-1))
    []
    >>> rng = np.random.default_rng(0)
    >>> new = propose_dichotomic([[0.5, 0.0], [0.1, 400.0]], [1e-5, 1e-1], (1e-5, 1e-1), rng)
    >>> bool(0.9e-5 <= new[0] <= 1.1e-5)
    True
    """
    low, high = interval
    known, new = list(lams), []
    front = np.asarray(front, dtype=float).reshape(-1, 2)
    for p, q in zip(front[:-1], front[1:]):
        lam = dichotomic_weight(p, q)
        if not np.isfinite(lam) or not 0 <= lam < 1:
            continue
        near = [k for k in known if abs(k - lam) <= tol]
        if near:
            if rng is None:
                continue
            hat = min(near, key=lambda k: abs(k - lam))
            lam = float(rng.uniform(max(0.9 * hat, low), min(1.1 * hat, high)))
        if lam not in known:
            known.append(lam)
            new.append(lam)
    return new


def _midpoint(a, b):
    """Geometric midpoint of a λ interval (arithmetic when it starts at 0)."""
    return float(np.sqrt(a * b)) if a > 0 else (a + b) / 2


def propose_bisection(lams, knee_lam, points=None, resolution=0.5, n_new=2):
    """Split the λ intervals on either side of the current knee (Reiners §5).

    The bisection search decomposes the λ interval into sub-intervals of equal
    size (in log λ, since critical weights lie in a narrow range close to zero,
    §6.3.2) and refines where the trade-off changes most: next to the knee,
    the side whose ends lie farther apart on normalised axes first. A side
    spanning at most ``resolution`` decades (``log10(b / a) <= resolution``)
    is resolved; once both are, nothing is proposed.

    Parameters
    ----------
    lams : sequence of float
        The weights trained so far.
    knee_lam : float
        The weight of the current knee (one of ``lams``).
    points : array-like of shape (len(lams), 2) or None, default=None
        ``(loss, complexity)`` of each weight; None orders the sides by width.
    resolution : float, default=0.5
        In decades of λ.
    n_new : int, default=2
        The most new weights to return.

    Returns
    -------
    list of float
        Midpoints (in log λ) of the unresolved intervals next to the knee.

    Examples
    --------
    >>> [round(x, 6) for x in propose_bisection([1e-4, 1e-3, 1e-2], 1e-3)]
    [0.000316, 0.003162]
    >>> pts = [[0.1, 0.9], [0.2, 0.5], [2.0, 0.0]]
    >>> [round(x, 6) for x in propose_bisection([1e-4, 1e-3, 1e-2], 1e-3, pts, n_new=1)]
    [0.003162]
    >>> propose_bisection([1e-4, 3e-4, 9e-4], 3e-4)
    []
    """
    lams = np.asarray(lams, dtype=float)
    order = np.argsort(lams, kind="stable")
    grid = lams[order]
    z = normalize(np.asarray(points, dtype=float)[order]) if points is not None else None
    k = int(np.argmin(np.abs(grid - knee_lam)))
    sides = [j for j in (k - 1, k) if 0 <= j < len(grid) - 1]
    sides = [j for j in sides if grid[j] <= 0 < grid[j + 1] or _decades(grid, j) > resolution]

    def change(j):
        if z is not None:
            return float(np.hypot(*(z[j + 1] - z[j])))
        return _decades(grid, j) if grid[j] > 0 else np.inf

    sides.sort(key=change, reverse=True)
    return [_midpoint(grid[j], grid[j + 1]) for j in sides[:n_new]]


def _decades(grid, j):
    """Width of ``[grid[j], grid[j + 1]]`` in decades (inf from 0)."""
    return float(np.log10(grid[j + 1] / grid[j])) if grid[j] > 0 else np.inf


def log_grid(low, high, n):
    """``n`` weights log-spaced over ``[low, high]`` (linear from 0 if low is 0).

    Reiners Fig. 9(a) uses such a list over ``[1e-5, 0.1]``, condensed towards
    small weights.

    Examples
    --------
    >>> log_grid(1e-5, 1e-1, 5)
    array([1.e-05, 1.e-04, 1.e-03, 1.e-02, 1.e-01])
    >>> log_grid(0.0, 1e-2, 3).tolist()
    [0.0, 0.0001, 0.01]
    """
    if low > 0:
        return np.geomspace(low, high, n)
    rest = np.geomspace(high * 1e-2, high, n - 1) if n > 1 else np.array([])
    return np.concatenate([[0.0], rest])[:n]


#: ``ParetoSearchCV(knee=)`` name -> knee rule
KNEE_RULES = {
    "chord": knee_chord_distance,
    "ideal": knee_ideal_point,
    "one_se": knee_one_se,
    "tolerance": knee_tolerance,
}

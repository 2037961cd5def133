"""The training loop of :mod:`skprune.engine`: one stack of K copies.

Mirrors, step for step, what a single fit of a
:class:`~skprune.SparseNetClassifier` or :class:`~skprune.SparseNetRegressor`
does through skorch (prune before training; per epoch one ``randperm`` of
each copy's rows; per batch forward, ``(1 − λ)·E + λ·Ω`` with E's and Ω's
analytic gradients, optimiser step, batchwise pruning; epochwise pruning; the
history records; each copy's DivergenceCheck; its PrintLog row with
``verbose``; prune after training), for all copies at once.
"""

import time

import torch

from ..parts._optim import MultiObjectiveOptimizer
from ..parts._regularizers import ElementwiseRegularizer
from ._stack_hooks import Stack, call_stack_hook, stack_parts
from ._stack_valid import ValidRows
from ._stacked import copy_generators, error_grad, stack_modules
from ._stopping import FrozenCopies
from ._threads import step_work, torch_threads

#: torch's fused Adam kernel, a private function (``None``: every step is ``optimizer.step``).
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)

__all__ = ["train_stack"]


def train_stack(copies, X):
    """Train the copies (see :class:`skprune.engine._Copy`) on ``X`` as one stack.

    Their nets' modules receive the trained weights and optimiser state; their
    histories receive one entry per epoch. After every epoch each copy's own
    :class:`~skprune._checks.DivergenceCheck` looks at its history row and
    weights, as in skorch's loop; a copy that diverged keeps its
    ``FloatingPointError`` in ``copy.error`` (its numbers are its own: the
    others train on unharmed), and the stack stops once every copy has.
    Returns the indices of the copies that diverged. Torch threads follow the
    work of a step of the whole stack (:func:`skprune._threads.policy_threads`).
    """
    rows = min(copies[0].estimator.batch_size, max(len(c.rows) for c in copies))
    with torch_threads(step_work(copies[0].net.module_, X, rows * len(copies))):
        return _train_stack(copies, X)


def _train_stack(copies, X):
    est, net = copies[0].estimator, copies[0].net
    rows_error = error_grad(est._criterion)  # E's rows and gradient, in closed form
    rngs = copy_generators([c.rng_state for c in copies], X.device)
    model = stack_modules([c.net.module_ for c in copies], rngs)
    reg = net.regularizer
    reg_names = [f"{name}.weight" for name, _ in net.regularized_named_]
    reg_weights = [model.params[name] for name in reg_names]
    device = X.device
    lam = torch.tensor([float(c.lam) for c in copies], device=device)
    # Reiners §3.2: a multi-objective optimiser takes E as the loss and Ω apart.
    multi = isinstance(net.optimizer_, MultiObjectiveOptimizer)
    penalized = reg is not None and reg.in_loss and bool(reg_weights) and bool((lam > 0).any())
    penalized = penalized and not multi
    # Ω of the part's own parameters (the gates'): the part adds λ·∂Ω/∂them in stack_grad.
    own_penalty = getattr(reg, "stack_penalty", None)
    reg_grad = stacked_grad(reg) if penalized and own_penalty is None else None
    # The net's own optimiser class and settings (fused Adam on the CPU included).
    optimizer = _stacked_optimizer(net.optimizer_, model, reg, reg_weights, len(copies))
    step = _fast_step(optimizer)
    stack = Stack(copies, model, reg_names, reg_weights, lam, optimizer, X, rngs=rngs)
    if copies[0].valid_rows is not None:  # validation_fraction > 0: each copy's held-out rows
        X_valid = X if copies[0].valid_X is None else copies[0].valid_X
        stack.valid = ValidRows(copies, X_valid, rows_error, est.batch_size)
    parts = stack_parts(net)  # regularizer, pruner, schedule, early stopping: skorch's order
    frozen = FrozenCopies(stack)  # copies that stopped early keep their weights
    # E's weight (1 − λ) where λ·Ω enters the loss, else 1 (as the separate fit's get_loss).
    plan = _BatchPlan(copies, est.batch_size, lam if penalized else torch.zeros_like(lam))
    generators = [torch.Generator().manual_seed(c.seed) for c in copies]

    call_stack_hook(parts, "stack_begin", stack)
    for epoch in range(1, net.max_epochs + 1):
        stack.epoch = epoch
        start = time.perf_counter()
        call_stack_hook(parts, "stack_epoch_begin", stack)
        if not frozen.update():
            break
        idx, targets = plan.epoch_order(generators)
        losses, errors = [], []
        for cols, scale, weight in plan.batches:
            call_stack_hook(parts, "stack_batch_begin", stack)
            # (K, B, …), or (1, B, …) when every copy draws the same rows.
            xb = X.index_select(0, idx[: plan.n_inputs, cols].reshape(-1))
            xb = xb.view(plan.n_inputs, -1, *X.shape[1:])
            logits = model.forward(xb)
            error_rows, grad = rows_error(logits, targets[:, cols], scale)
            error = error_rows.mean(1) if weight is None else (error_rows * weight).sum(1)
            loss = error
            if penalized:
                own = reg_grad is None
                omega = own_penalty(stack) if own else per_copy_penalty(reg, reg_weights)
                loss = (1 - lam) * error + lam * omega
            model.backward(grad)
            if reg_grad is not None:
                _add_penalty_grad(reg_grad, reg_weights, lam)
            call_stack_hook(parts, "stack_grad", stack)
            step()
            frozen.hold()
            call_stack_hook(parts, "stack_batch_end", stack)
            losses.append(loss)
            errors.append(error)
        if stack.valid is not None:  # skorch's validation step, before on_epoch_end
            stack.records.update(stack.valid.records(model))
        call_stack_hook(parts, "stack_epoch_end", stack)
        training = stack.training
        records = stack.records
        _record_epoch(
            copies, reg, reg_weights, reg_names, plan, losses, errors, start, training, records
        )
        _record_parts(copies, stack.records, training)
        if _check_divergence(copies, model, training):
            break
        if est.verbose:
            _print_progress(copies)
    call_stack_hook(parts, "stack_end", stack)
    _write_back(copies, model, optimizer, frozen.states)
    return [k for k, c in enumerate(copies) if c.error is not None]


class _BatchPlan:
    """Each copy's batches: its rows in its own random order, in slices of ``batch_size``.

    Copies share the number of batches; a copy with fewer rows has a shorter
    last batch, padded to the others' length with rows of weight 0. Copies
    with the same rows and seed (a λ path with an int ``random_state``) draw
    the same batches: ``n_inputs`` is then 1, and the stack reads one batch.
    """

    def __init__(self, copies, batch_size, lam):
        sizes = torch.tensor([len(c.rows) for c in copies])
        self.sizes = sizes.tolist()
        n_max = int(sizes.max())
        device = lam.device
        self.rows = _pad([c.rows for c in copies], n_max, device)
        same = all(c.seed == copies[0].seed for c in copies) and bool(
            (self.rows == self.rows[:1]).all()
        )
        self.n_inputs = 1 if same else len(copies)
        self.y = _pad([c.y for c in copies], n_max, device)
        ragged = len(set(self.sizes)) > 1
        self.batches, self.counts = [], []
        self.lam = lam
        self.row_weight = _row_weights(copies, n_max, device)
        for start in range(0, n_max, batch_size):
            stop = min(start + batch_size, n_max)
            counts = (sizes - start).clamp(0, batch_size).to(device, torch.float32)
            scale = ((1 - lam) / counts)[:, None]
            weight = None
            if ragged:
                valid = torch.arange(start, stop, device=device)[None] < sizes[:, None].to(device)
                weight, scale = valid / counts[:, None], scale * valid
            self.batches.append((slice(start, stop), scale, weight))
            self.counts.append(counts)
        #: What each batch's E counts for in the epoch's mean E: its rows, or its rows' weights.
        self.error_counts = self.counts

    def epoch_order(self, generators):
        """``(row indices (K, n_max), targets (K, n_max, …))``: the epoch's batches side by side."""
        if self.n_inputs == 1:  # the same permutation for every copy: draw it once
            perms = [torch.randperm(self.sizes[0], generator=generators[0])] * len(self.sizes)
        else:
            perms = [torch.randperm(n, generator=g) for n, g in zip(self.sizes, generators)]
        pos = _pad(perms, self.rows.shape[1], self.rows.device)
        y_pos = pos.view(*pos.shape, *[1] * (self.y.dim() - 2)).expand_as(self.y)
        if self.row_weight is not None:
            self._weigh_batches(self.row_weight.gather(1, pos))
        return self.rows.gather(1, pos), self.y.gather(1, y_pos)

    def _weigh_batches(self, w):
        """The epoch's batches with the rows' weights: E of a batch is ``Σ wᵢℓᵢ / Σ wᵢ``,
        as the net's ``_error``, and counts for ``Σ wᵢ`` in the epoch's mean E."""
        sizes = torch.tensor(self.sizes, device=w.device)[:, None]
        w = w * (torch.arange(w.shape[1], device=w.device) < sizes)  # no weight on padding
        batches, totals = [], []
        for cols, _, _ in self.batches:
            total = w[:, cols].sum(1)
            weight = w[:, cols] / total.clamp_min(1e-12)[:, None]
            batches.append((cols, weight * (1 - self.lam)[:, None], weight))
            totals.append(total)
        self.batches, self.error_counts = batches, totals


def _stacked_optimizer(own, model, reg, reg_weights, n_copies):
    """The net's optimiser class and settings over the stacked parameters; a
    multi-objective one gets Ω of the stacked weights, and a λ* per copy."""
    if not isinstance(own, MultiObjectiveOptimizer):
        return type(own)(list(model.params.values()), **own.defaults)
    optimizer = type(own)(list(model.params.values()), **own.defaults, lam=own.lam)
    grad = stacked_grad(reg) if reg is not None else None
    optimizer.set_objective(reg, reg_weights, n_copies, grad)
    return optimizer


def _row_weights(copies, n_max, device):
    """Each copy's training rows' weights, (K, n_max), or None when no copy has any."""
    if all(c.weight is None for c in copies):
        return None
    weights = [torch.ones(len(c.rows)) if c.weight is None else c.weight for c in copies]
    return _pad([w.to(device, torch.float32) for w in weights], n_max, device)


def _fast_step(optimizer):
    """``optimizer.step``, or for fused Adam its kernel called directly.

    After the first ``step`` (which makes the state) the same two calls that
    ``torch.optim.Adam(fused=True)`` makes, without its per-step bookkeeping
    (a third of a small network's step): the same numbers.
    """
    group = optimizer.param_groups[0]
    plain = (
        _FUSED_ADAM is None
        or type(optimizer) is not torch.optim.Adam
        or len(optimizer.param_groups) != 1
        or not group.get("fused")
        or group["amsgrad"]
        or group["capturable"]
        or group["differentiable"]
        or group.get("decoupled_weight_decay", False)
        or torch.is_tensor(group["lr"])
    )
    if plain:
        return optimizer.step
    params = group["params"]
    state = optimizer.state
    options = {
        "amsgrad": False,
        "lr": group["lr"],
        "beta1": group["betas"][0],
        "beta2": group["betas"][1],
        "weight_decay": group["weight_decay"],
        "eps": group["eps"],
        "maximize": group["maximize"],
        "grad_scale": None,
        "found_inf": None,
    }

    def step():
        if not state:
            optimizer.step()
            return
        steps = [state[p]["step"] for p in params]
        torch._foreach_add_(steps, 1)
        options["lr"] = group["lr"]  # a schedule may have set it
        _FUSED_ADAM(
            params,
            [p.grad for p in params],
            [state[p]["exp_avg"] for p in params],
            [state[p]["exp_avg_sq"] for p in params],
            [],
            steps,
            **options,
        )

    return step


@torch.no_grad()
def _check_divergence(copies, model, training):
    """Each training copy's DivergenceCheck on its epoch; True once every copy has
    diverged or stopped.

    The check is the one skorch's loop calls (one definition of divergence);
    only whether the copy's weights are finite is computed here, for all at once.
    """
    finite = torch.ones(len(copies), dtype=torch.bool)
    for p in model.params.values():
        finite &= torch.isfinite(p).flatten(1).all(1).cpu()
    for k, c in enumerate(copies):
        if c.error is None and training[k]:
            try:
                c.divergence.check(c.net, weights_finite=bool(finite[k]))
            except FloatingPointError as error:
                c.error = error
    return all(c.error is not None or not t for c, t in zip(copies, training))


def _pad(tensors, length, device):
    """Stack tensors (n_k, …) into (K, length, …), padding with each one's first row."""
    if all(len(t) == length for t in tensors):
        return torch.stack([t.to(device) for t in tensors])
    out = torch.stack([t[:1].to(device).expand(length, *t.shape[1:]).clone() for t in tensors])
    for k, t in enumerate(tensors):
        out[k, : len(t)] = t
    return out


def per_copy_penalty(reg, weights):
    """Ω of each copy, shape (K,): the regularizer's own ``penalty`` on its slices."""
    terms = [reg.terms(w) for w in weights]
    if terms[0] is not None:  # Ω a sum of elementwise terms: one reduction per tensor
        return sum(t.flatten(1).sum(1) for t in terms)
    if weights[0].shape[0] == 1:
        return torch.as_tensor(reg.penalty([w[0] for w in weights])).reshape(1)
    return torch.func.vmap(lambda *ws: torch.as_tensor(reg.penalty(list(ws))))(*weights)


def stacked_grad(reg):
    """∂Ω/∂w of a stacked tensor (K, …): ``reg.grad`` itself for an elementwise Ω,
    else ``reg.grad`` of each copy's slice (``vmap``; a single copy's slice as it is,
    so that a single fit needs no ``vmap``-able ``grad``)."""
    if isinstance(reg, ElementwiseRegularizer):
        return reg.grad
    vmapped = torch.func.vmap(reg.grad)

    def grad(w):
        return reg.grad(w[0]).unsqueeze(0) if w.shape[0] == 1 else vmapped(w)

    return grad


@torch.no_grad()
def _add_penalty_grad(grad, weights, lam):
    """``p.grad += λ_k · ∂Ω/∂w`` (the loss's λ·Ω term, Reiners eq. 7)."""
    for w in weights:
        w.grad.addcmul_(grad(w), lam.view(-1, *[1] * (w.dim() - 1)))


@torch.no_grad()
def _record_epoch(copies, reg, weights, names, plan, losses, errors, start, training, records):
    """Write the epoch's history entries of every training copy, as skorch and
    SparsityHistory do; a part's ``penalty`` in ``records`` replaces the loop's Ω of
    the weights (the other records are :func:`_record_parts`')."""
    counts, error_counts = torch.stack(plan.counts).cpu(), torch.stack(plan.error_counts).cpu()
    losses, errors = torch.stack(losses).cpu().double(), torch.stack(errors).cpu().double()
    mean_loss = ((losses * counts).sum(0) / counts.sum(0)).tolist()
    mean_error = ((errors * error_counts).sum(0) / error_counts.sum(0)).tolist()
    error_key = copies[0].net.error_key  # "ce" or "mse"
    penalty = records.pop("penalty", None)
    if penalty is None and reg is not None and weights:
        penalty = per_copy_penalty(reg, weights).tolist()
    nonzero = [torch.count_nonzero(w, dim=tuple(range(1, w.dim()))).tolist() for w in weights]
    sizes = [w[0].numel() for w in weights]
    dur = time.perf_counter() - start
    batch_losses, batch_counts = losses.T.tolist(), counts.T.tolist()
    for k, c in enumerate(copies):
        if not training[k]:
            continue
        history = c.net.history
        history.new_epoch()
        history.record("epoch", len(history))
        # The batch rows new_batch and record_batch would write, built at once.
        history[-1]["batches"] = [
            {"train_loss": value, "train_batch_size": int(count)}
            for value, count in zip(batch_losses[k], batch_counts[k])
        ]
        best = min((e["train_loss"] for e in history[-2:-1]), default=float("inf"))
        n_nonzero = sum(nz[k] for nz in nonzero)
        record = {
            "train_batch_count": len(plan.batches),
            "train_loss": mean_loss[k],
            "train_loss_best": mean_loss[k] < best,
            "dur": dur,
            error_key: mean_error[k],
            "penalty": penalty[k] if penalty is not None else 0.0,
            "n_nonzero": n_nonzero,
            "density": n_nonzero / sum(sizes) if sizes else 1.0,
            "layer_density": {n: nz[k] / s for n, nz, s in zip(names_of(names), nonzero, sizes)},
        }
        for key, value in record.items():
            history.record(key, value)


def _record_parts(copies, records, training):
    """Write the epoch's entries that are not the loop's own (:attr:`Stack.records`):
    the validation scores, those of the parts; then empty ``records``."""
    valid_batches = records.pop("valid_batches", None)
    for k, c in enumerate(copies):
        if not training[k]:
            continue
        if valid_batches is not None:  # after the training batches, as skorch's loop
            c.net.history[-1]["batches"] += [
                {"valid_loss": loss, "valid_batch_size": size} for loss, size in valid_batches[k]
            ]
        for key, values in records.items():
            c.net.history.record(key, values[k])
    records.clear()


def _print_progress(copies):
    """The epoch's progress: a single copy's row of skorch's table (its own
    PrintLog, as a fit through skorch's loop prints it), or one line for a stack:
    its losses' and densities' ranges."""
    if len(copies) == 1:
        dict(copies[0].net.callbacks_)["print_log"].on_epoch_end(copies[0].net)
        return
    last = [c.net.history[-1] for c in copies]
    loss, density = [e["train_loss"] for e in last], [e["density"] for e in last]
    print(
        f"epoch {last[0]['epoch']:>3}/{copies[0].net.max_epochs}: {len(copies)} networks "
        f"(λ {min(c.lam for c in copies):.3g}–{max(c.lam for c in copies):.3g}), "
        f"train loss {min(loss):.4f}–{max(loss):.4f}, "
        f"density {min(density):.3f}–{max(density):.3f}, {last[0]['dur']:.2f} s",
        flush=True,
    )


def names_of(param_names):
    """Layer names of ``"<layer>.weight"`` parameter names."""
    return [name.rpartition(".")[0] for name in param_names]


@torch.no_grad()
def _write_back(copies, model, optimizer, stopped=None):
    """Copy each copy's slice of the stacked weights, buffers (a batch norm's running
    statistics) and optimiser state to its net;
    ``stopped``: copy index -> its optimiser state (by name) of when it stopped."""
    for k, c in enumerate(copies):
        own_buffers = dict(c.net.module_.named_buffers())
        for name, stacked in model.buffers.items():
            own_buffers[name].copy_(stacked[k])
        own = dict(c.net.module_.named_parameters())
        for name, stacked in model.params.items():
            own[name].copy_(stacked[k])
            state = optimizer.state.get(stacked)
            if stopped and k in stopped:
                if stopped[k][name]:
                    c.net.optimizer_.state[own[name]] = stopped[k][name]
            elif state:
                c.net.optimizer_.state[own[name]] = {
                    key: _slice(value, stacked, k) for key, value in state.items()
                }


def _slice(value, stacked, k):
    if torch.is_tensor(value) and value.shape == stacked.shape:
        return value[k].clone()
    return value.clone() if torch.is_tensor(value) else value

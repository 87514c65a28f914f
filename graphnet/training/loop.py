"""The training loop: batches of a data set through one training-step graph (forward, losses,
backward, update: graphnet/transforms/train_step.py), on the NumPy back end or onnxruntime, with
the schedule's learning rates fed per step, metrics per epoch, checkpoints at the policy's points,
and a located stop at the first non-finite loss.

What makes a run repeatable bit for bit on one machine: the initial weights come from the seed,
epoch e's order is a permutation drawn from (seed, e), and every plan and kernel is deterministic;
so a run resumed from a checkpoint (which records epochs, batches and steps done) takes the same
batches in the same order and ends with the same weights as one never stopped."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..errors import Location, SpecError
from ..weights.check import check_weights
from ..transforms.optim import Update, init_state, lr_name, new, update_graph
from ..transforms.train_step import gradient_step, training_step
from .checkpoint import Position, save_checkpoint
from .config import Resolved
from .data import Dataset
from .evaluation import metrics_of
from .lbfgs import LBFGS, LBFGSState, lbfgs_step
from .metrics import Metrics
from .objective import TOTAL, loss_output, objective, trained_params
from .runner import Runner, first_nonfinite


class Trainer:
    """Training of one network by one config, from weights and optionally a checkpoint's state."""

    def __init__(self, net, resolved: Resolved, weights: dict[str, np.ndarray], *, backend: str = "numpy",
                 device: str = "cpu", max_memory: int | None = None):
        from ..transforms.autodiff import COTANGENT, GRAD, differentiate
        self.net, self.resolved, self.config = net, resolved, resolved.config
        self.obj = objective(net, resolved)
        self.trained = trained_params(net.graph)
        if not self.trained:
            raise SpecError.at(Location(net.graph.source), f"'{net.name}' has no trainable float params")
        cotangent = COTANGENT + TOTAL
        extras = self.obj.extras
        grads = differentiate(self.obj.train, self.trained, {TOTAL: cotangent})
        # the running statistics train mode updates are carried from step to step like the weights
        self.carried = dict(extras.state)            # param -> the output with its new value
        keep = list(dict.fromkeys([TOTAL] + [loss_output(o) for o in self.obj.losses] + list(net.graph.outputs)
                                  + list(self.carried.values())))
        weights = extras.complete(dict(weights))
        self.fixed = {k: v for k, v in weights.items() if k not in self.trained and k not in self.carried}
        self.weights = {k: np.asarray(weights[k]) for k in self.trained}
        self.running = {k: np.asarray(weights[k]) for k in self.carried}
        self.lbfgs = resolved.optimizer if isinstance(resolved.optimizer, LBFGS) else None
        refuse = None
        if max_memory is not None:
            def refuse(need, binding):
                type(net)(self.graph).refuse_over(need, binding, max_memory)
        if self.lbfgs is not None:
            self.graph = gradient_step(grads, self.trained + list(self.carried), cotangent)
            self.graph = dataclasses.replace(
                self.graph, outputs={**{k: self.graph.outputs[k] for k in keep},
                                     **{GRAD + p: self.graph.outputs[GRAD + p] for p in self.trained}})
            self.update = None
            self.state = LBFGSState()
        else:
            types = {p: net.graph.params[p].type for p in self.trained}
            self.update: Update = update_graph(resolved.groups, types, self.config.clip_grad_norm)
            self.graph = training_step(grads, self.update, {p: grads.outputs[GRAD + p] for p in self.trained},
                                       cotangent, keep, tuple(self.carried))
            self.state = init_state(self.update, resolved.groups, self.weights)
        self.runner = Runner(self.graph, self.fixed, backend, device, max_memory, refuse)
        self.position = Position()
        self.GRAD = GRAD

    # -- state a checkpoint holds ------------------------------------------------------------------

    def all_weights(self) -> dict[str, np.ndarray]:
        return {**self.fixed, **self.running, **self.weights}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return self.state.arrays() if self.lbfgs is not None else self.state

    def restore(self, checkpoint) -> None:
        """Continue from a checkpoint, every part of it checked against this run first (a
        checkpoint is a file like any other: its weights as the spec declares them, its optimizer
        state as this run's is made)."""
        weights = check_weights(self.net.graph, checkpoint.weights, checkpoint.path)
        self.weights = {k: np.array(weights[k]) for k in self.trained}
        self.fixed.update({k: v for k, v in weights.items() if k in self.fixed})
        self.running.update({k: np.array(v) for k, v in weights.items() if k in self.running})
        if self.lbfgs is not None:
            size = sum(self.weights[k].size for k in self.trained)
            self.state = LBFGSState.from_arrays(checkpoint.state, size, self.lbfgs.history_size, checkpoint.refuse)
        else:
            self.state = checkpoint.state_like(self.state)
        self.position = checkpoint.position

    # -- one step ----------------------------------------------------------------------------------

    def lrs(self) -> list[float]:
        t = self.position.steps if self.resolved.schedule.interval == "step" else self.position.epoch
        if self.lbfgs is not None:
            return [self.resolved.schedule.lr(self.lbfgs.lr, t)]
        groups = self.resolved.groups
        return [self.resolved.schedule.lr(groups.optimizer(i).lr, t) for i in range(len(groups))]

    def step(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed_check = self.net.feed({k: batch[k] for k in self.net.graph.inputs})
        binding = feed_check.dims
        dtype = self.net.graph.params[self.trained[0]].type.dtype
        if self.lbfgs is not None:
            return self._lbfgs_step(batch, binding)
        feed = {**batch, **self.weights, **self.state, **self.running, **self.masks(binding),
                **{lr_name(i): np.asarray(lr, dtype) for i, lr in enumerate(self.lrs())}}
        out = self.runner(feed, binding)
        if not np.isfinite(out[TOTAL]):
            self._stop(feed, binding, out[TOTAL])
        self.weights = {k: out[new(k)] for k in self.weights}
        self.state = {k: out[new(k)] for k in self.state}
        self.running = {k: out[o] for k, o in self.carried.items()}
        return out

    def masks(self, binding: dict[str, int]) -> dict[str, np.ndarray]:
        """This step's dropout masks, drawn from the seed and the step (train_mode's rule)."""
        return self.obj.extras.dropout_masks(binding, self.position.steps) if self.obj.extras.dropouts else {}

    def _lbfgs_step(self, batch, binding):
        shapes = [(k, self.weights[k].shape, self.weights[k].size) for k in self.trained]
        opt = self.lbfgs.model_copy(update={"lr": self.lrs()[0]})
        last = {}

        def unflat(x):
            out, i = {}, 0
            for k, shape, n in shapes:
                out[k] = x[i:i + n].reshape(shape)
                i += n
            return out

        masks = self.masks(binding)

        def closure(x):
            feed = {**batch, **unflat(x), **self.running, **masks}
            out = self.runner(feed, binding)
            if not np.isfinite(out[TOTAL]):
                self._stop(feed, binding, out[TOTAL])
            last.clear()
            last.update(out)
            return float(out[TOTAL]), np.concatenate([out[self.GRAD + k].ravel() for k in self.trained])
        x0 = np.concatenate([self.weights[k].ravel() for k in self.trained])
        x, loss = lbfgs_step(opt, self.state, x0, closure)
        self.weights = unflat(x)
        self.running = {k: last[o] for k, o in self.carried.items()}
        return {**last, TOTAL: np.asarray(loss, x.dtype)}

    def _stop(self, feed, binding, value):
        p = self.position
        where = f"step {p.steps + 1} (epoch {p.epoch + 1}, batch {p.batch + 1})"
        found = first_nonfinite(self.graph, self.fixed, feed, binding)
        if found is None:
            raise SpecError.at(Location(self.net.graph.source), f"the loss is {value} at {where}")
        d = found.diagnostics[0]
        raise SpecError.at(d.loc, f"the loss is {value} at {where}; {d.message}", d.notes)

    # -- epochs ------------------------------------------------------------------------------------

    def evaluate(self, data: Dataset, batch_size: int) -> dict[str, float]:
        return metrics_of(self.net, self.obj, self.all_weights(), data, self.config.metrics, batch_size)

    def order(self, data: Dataset, epoch: int) -> np.ndarray:
        if not self.config.shuffle:
            return np.arange(data.size)
        return np.random.default_rng([self.config.seed, epoch]).permutation(data.size)

    def fit(self, train: Dataset, val: Dataset | None, *, on_step=None, on_epoch=None, checkpoint=None,
            progress=None) -> None:
        """Train to the config's epochs from the current position. `on_step(record)` and
        `on_epoch(record)` see each step's and epoch's metrics; `checkpoint()` is called at the
        policy's points; `progress(epoch, batches)` wraps an epoch's batches (a progress bar)."""
        cfg = self.config
        inputs = list(self.obj.train.inputs)
        per_epoch = -(-train.size // cfg.batch_size)
        while self.position.epoch < cfg.epochs:
            epoch = self.position.epoch
            started = time.perf_counter()
            metrics = Metrics(cfg.metrics, self.obj.targets)
            batches = train.batches(cfg.batch_size, self.order(train, epoch))
            skip = self.position.batch
            iterator = progress(epoch, per_epoch, skip) if progress else None
            for b, batch in enumerate(batches):
                if b < skip:
                    continue
                batch = {k: batch[k] for k in inputs if k in batch}
                lrs = self.lrs()
                out = self.step(batch)
                size = len(next(iter(batch.values())))
                metrics.add(batch, out, size)
                self.position.steps += 1
                self.position.batch = b + 1
                if on_step:
                    on_step({"kind": "step", "epoch": epoch + 1, "step": self.position.steps,
                             "loss": float(out[TOTAL]), "lr": lrs[0]})
                if iterator is not None:
                    iterator.update(1)
                    iterator.set_postfix(loss=f"{float(out[TOTAL]):.4g}")
                if checkpoint and cfg.checkpoint.every_steps and self.position.steps % cfg.checkpoint.every_steps == 0:
                    checkpoint()
            if iterator is not None:
                iterator.close()
            record = {"kind": "epoch", "epoch": epoch + 1, "steps": self.position.steps,
                      **{f"train_{k}": v for k, v in metrics.values().items()}}
            if val is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(val, cfg.batch_size).items()})
            record["seconds"] = round(time.perf_counter() - started, 3)
            self.position.epoch += 1
            self.position.batch = 0
            self.position.history.append(record)
            if on_epoch:
                on_epoch(record)
            if checkpoint and (self.position.epoch % cfg.checkpoint.every == 0 or self.position.epoch == cfg.epochs):
                checkpoint()

    def save(self, path: str, meta: dict) -> None:
        save_checkpoint(path, self.all_weights(), self.state_arrays(), self.position, meta)

"""Training under ``MultiWorkerMirroredStrategy`` with a custom loop (``--strategy=multi_worker``).

Keras 3.15's ``model.fit`` fails under this strategy (keras-team/keras#20585: a PerReplica
value in ``_maybe_symbolic_build``, then ``reduce_per_replica``), while the same model,
optimizer and loss run fine in a ``strategy.run`` loop, so this module is that loop:

- every worker reads its own shard of the training folds (``distribute_datasets_from_function``
  -> ``make_dataset(input_context=...)``; per-replica batch = global ``--batch_size`` / replicas);
- each step computes the run's loss on the per-replica batch, the strategy all-reduces the
  gradients, and the run's AdamW (``recipe.compile_model``: same schedule) applies them;
- after each epoch every worker scores the whole validation fold (same weights, same score),
  and only the chief (worker 0) writes the workdir: ``model.keras`` via ``KeepModel``,
  ``history.csv``, and a checkpoint (weights, optimizer, epoch) in ``backup_multi_worker/`` that
  a rerun of the same command resumes from (the workers must see the chief's workdir).

Run one process per machine with ``TF_CONFIG`` naming all workers (see the README).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

BACKUP = "backup_multi_worker"


def is_chief(strategy) -> bool:
    """Worker 0 (or a "chief" task) writes the run; the others write to a temporary folder."""
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def _train_step(model, strategy, auc):
    """A tf.function: one all-reduced step on the next global batch of an iterator; returns
    the summed per-replica loss."""
    import tensorflow as tf

    @tf.function
    def train_step(iterator):
        def replica_step(spec, labels):
            with tf.GradientTape() as tape:
                logits = model(spec, training=True)
                # The loss is a per-replica mean: dividing by the replicas makes the all-reduced
                # sum of gradients the gradient of the global-batch mean.
                loss = model.loss(labels, logits) / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            auc.update_state(labels, logits)
            return loss

        losses = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return train_step


def fit(model, run, strategy, workdir: Path, val_callbacks):
    """Trains ``model`` (built and compiled in ``strategy.scope()``) for ``run.config.epochs``.

    Args:
      run: the ``run.Run``: its training folds, statistics and steps per epoch.
      val_callbacks: Keras callbacks run after each epoch with the epoch's logs (``auc``,
        ``loss``) on every worker; ``ValidationAuc`` adds ``val_macro_auc``.
      workdir: the chief's workdir (its checkpoint is read by every worker on resume).

    Returns:
      (first epoch run, from 0, and seconds spent training).
    """
    import keras
    import tensorflow as tf

    from ecg_keras.training import recipe

    chief = is_chief(strategy)
    config = run.config
    steps_per_epoch = recipe.steps_per_epoch(config, run.manifest)

    def dataset_fn(input_context):
        ds = run.split(config.train_folds, True, input_context=input_context)
        return ds.repeat()  # each worker's shard differs in length: steps are counted instead

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        auc = keras.metrics.AUC(multi_label=True, from_logits=True, name="auc")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    backup = workdir / BACKUP
    latest = tf.train.latest_checkpoint(str(backup))
    if latest:
        checkpoint.restore(latest)
        print(f"resuming from {latest} at epoch {int(epoch.numpy()) + 1}", flush=True)
    # Non-chief workers must also save (the save is collective) but to a folder of their own.
    save_dir = backup if chief else Path(tempfile.mkdtemp(prefix="ecg_keras_worker_"))
    manager = tf.train.CheckpointManager(checkpoint, str(save_dir), max_to_keep=1)

    train_step = _train_step(model, strategy, auc)
    for callback in val_callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    first = int(epoch.numpy())
    start = time.perf_counter()
    for e in range(first, config.epochs):
        tic, total = time.perf_counter(), 0.0
        auc.reset_state()
        for _ in range(steps_per_epoch):
            total += float(train_step(iterator))
        logs = {"auc": float(auc.result()), "loss": total / steps_per_epoch}
        for callback in val_callbacks:
            callback.on_epoch_end(e, logs)
        epoch.assign(e + 1)
        manager.save()
        shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        print(f"Epoch {e + 1}/{config.epochs} - {time.perf_counter() - tic:.0f}s - {shown}")
    for callback in val_callbacks:
        callback.on_train_end()
    if not chief:
        shutil.rmtree(save_dir, ignore_errors=True)
    return first, time.perf_counter() - start


def worker_workdir(workdir: Path, strategy) -> Path:
    """The chief writes ``workdir``; another worker writes a throwaway temporary folder."""
    if is_chief(strategy):
        return workdir
    return Path(tempfile.mkdtemp(prefix=f"ecg_keras_worker{strategy.cluster_resolver.task_id}_"))

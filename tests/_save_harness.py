"""Interrupt ``skprune.save`` at random moments and check what is left on disk.

Run as ``python _save_harness.py SIGNAL ROUNDS SEED FOLDER``. Each round forks
a child that saves model A and model B over one file, alternately and without
end; once the child starts, after a random delay (0 to 2 saves' time, seeded) the parent sends
``SIGNAL`` (``KILL`` or ``INT``), then checks that the file loads and is the save
of A or of B (by its checksum). Prints one JSON line of counts.
"""

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)  # no intra-op pool: forking is safe

import skprune  # noqa: E402


def _models():
    rng = np.random.RandomState(0)
    X, y = rng.rand(64, 64).astype(np.float32), np.arange(64) % 3
    return [
        skprune.SparseNetClassifier(
            module__hidden_layer_sizes=(256, 64), max_epochs=1, random_state=seed
        ).fit(X, y)
        for seed in (0, 1)
    ]


def _digest(path):
    """The file's SHA-256 entry (safetensors writes the metadata in no fixed order)."""
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return header["__metadata__"]["sha256"]


def _saving_child(models, target, first, ready):
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the KeyboardInterrupt traceback
        os.write(ready, b"1")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for i in range(10**9):
            skprune.save(models[(first + i) % 2], target)
    finally:
        os._exit(0)


def _stop(pid, sig):
    """Signal ``pid`` until it exits; how many signals past the first it took.

    Python drops a KeyboardInterrupt raised inside a finaliser ("Exception
    ignored in ..."), so a Ctrl-C can go unseen; a user would press it again.
    """
    for repeat in range(100):
        os.kill(pid, sig)
        for _ in range(200):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return repeat
            time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise RuntimeError("the child ignored 100 signals")


def main(sig, rounds, seed, folder):
    folder = Path(folder)
    models, target = _models(), folder / "model.skp"
    expected = []
    for i, model in enumerate(models):
        skprune.save(model, folder / f"ref{i}.skp")
        expected.append(_digest(folder / f"ref{i}.skp"))
    start = time.perf_counter()
    for _ in range(5):
        skprune.save(models[0], target)
    one_save = (time.perf_counter() - start) / 5
    rng = random.Random(seed)
    counts = {
        "rounds": rounds,
        "old": 0,
        "new": 0,
        "bad": 0,
        "side_files_left": 0,
        "signals_repeated": 0,
    }
    for r in range(rounds):
        skprune.save(models[r % 2], target)  # a good file to save over
        # Held until the child is in its loop: not lost in fork's own clean-up.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            _saving_child(models, target, (r + 1) % 2, ready_write)  # the other model first
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.read(ready_read, 1)  # the child is about to start saving
        os.close(ready_read)
        os.close(ready_write)
        time.sleep(rng.uniform(0, 2 * one_save))
        counts["signals_repeated"] += _stop(pid, getattr(signal, f"SIG{sig}"))
        try:
            skprune.load(target)  # checks the file against its digest
            digest = _digest(target)
        except ValueError:
            digest = None
        ok = digest in expected
        counts["bad" if not ok else "old" if digest == expected[r % 2] else "new"] += 1
        sides = [p for p in folder.iterdir() if p.name.startswith(".model.skp.")]
        counts["side_files_left"] += len(sides)
        for side in sides:
            side.unlink()
    counts["one_save_ms"] = round(one_save * 1000, 1)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

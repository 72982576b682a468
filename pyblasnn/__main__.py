"""``python -m pyblasnn``: train the book's MNIST network (Deep Learning with Python, ch. 2).

    Dense(512, relu) -> Dense(10, softmax), sparse categorical cross-entropy, 5 epochs of
    batch 128; prints Keras-style progress, then test accuracy, seconds per epoch and
    training samples per second.

The default optimizer is SGD(learning_rate=0.1, momentum=0.9): on MNIST it reaches test
accuracy >= 0.978 in 5 epochs, like the book's RMSprop (learning_rate=0.001) but at the same
cost per step and with fewer epochs to get there.

Data-parallel: ``mpiexec -n 2 python -m pyblasnn --distributed`` trains on two MPI ranks
(``pyblasnn.distributed``; threads per rank default to cores / ranks on the host); rank 0
prints and saves. ``--checkpoint PATH`` saves the model after every epoch and, when PATH
exists, resumes from it (on any number of ranks).

Errors in the arguments give one line on stderr and exit code 2. Ctrl-C during training stops
on a step boundary: with ``--save`` the model of the last completed step is saved, then one
line says what was kept and the exit code is 130 (128 + SIGINT), as for any interrupt.
"""
import argparse
import os
import signal
import sys
import time


DEFAULT_LR = {"sgd": 0.1, "rmsprop": 0.001}
DEFAULT_MOMENTUM = {"sgd": 0.9, "rmsprop": 0.0}


EXIT_INTERRUPTED = 130                  # 128 + SIGINT, the shell's code for Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): ``pyblasnn: error: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    p = _Parser(
        prog="pyblasnn",
        description="Train the MNIST network of Deep Learning with Python (ch. 2) on "
                    "pyblasnn's kernels: Dense(512, relu) -> Dense(10, softmax).")
    p.add_argument("--epochs", type=int, default=5, help="passes over the data (default 5)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default 128)")
    p.add_argument("--optimizer", choices=["sgd", "rmsprop"], default="sgd",
                   help="sgd (with momentum, default) or rmsprop (the book's choice)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default 0.1 for sgd, 0.001 for rmsprop")
    p.add_argument("--momentum", type=float, default=None,
                   help="default 0.9 for sgd, 0.0 for rmsprop")
    p.add_argument("--threads", type=int, default=None,
                   help="kernel threads (default: OMP_NUM_THREADS or every core; -1 = all)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for weight init and shuffling: the same seed gives a "
                        "bit-identical run (default 0; a negative value draws a random seed)")
    p.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist")
    p.add_argument("--train-samples", type=int, default=None, metavar="N",
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--save", metavar="PATH", default=None,
                   help="save the trained model (.npz: architecture, weights, optimizer state)")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="write the training curves, the first test digits with their "
                        "predictions, the most confidently wrong ones and the confusion "
                        "matrix as PNGs into DIR (needs matplotlib: pip install -e \".[plot]\")")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as `mpiexec -n P python -m pyblasnn "
                        "--distributed` (needs mpi4py: pip install -e \".[mpi]\")")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="save the model to PATH after every epoch; if PATH exists, resume "
                        "from it (same data, batch size and seed: the run ends as the "
                        "uninterrupted one would)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                   help="progress: 0 silent, 1 progress bar (default), 2 one line per epoch")
    return p


def _check_args(parser, args):
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.train_samples is not None and args.train_samples < 1:
        parser.error(f"--train-samples must be >= 1, got {args.train_samples}")
    if args.threads is not None and args.threads < 1 and args.threads != -1:
        parser.error(f"--threads must be >= 1 or -1, got {args.threads}")
    for flag, path in (("--save", args.save), ("--checkpoint", args.checkpoint)):
        if path is None:                    # found out now, not after the training run
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            parser.error(f"{flag} {path}: is a directory; give a file path")
        if not os.path.isdir(folder):
            parser.error(f"{flag} {path}: the directory {folder} does not exist")
    if args.distributed:
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            parser.error("--distributed needs mpi4py and an MPI library, which are not "
                         "installed (pip install -e \".[mpi]\"), or leave --distributed out")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib, which is not installed "
                         "(pip install -e \".[plot]\"), or leave --plot out")
        if os.path.exists(args.plot) and not os.path.isdir(args.plot):
            parser.error(f"--plot {args.plot}: exists and is not a directory")


def load_dataset(name):
    if name == "mnist":
        from .datasets import mnist as source
    else:
        from .datasets import fashion_mnist as source
    (x_train, y_train), (x_test, y_test) = source.load_data()
    x_train = x_train.reshape((x_train.shape[0], -1)).astype("float32") / 255
    x_test = x_test.reshape((x_test.shape[0], -1)).astype("float32") / 255
    return (x_train, y_train), (x_test, y_test)


def main(argv=None):
    """Run the CLI; returns the exit code (0, 1: data or file error, 2: bad argument,
    130: interrupted)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:               # outside training (loading, evaluating, saving)
        print("pyblasnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _save(model, path):
    """model.save with Ctrl-C ignored meanwhile (the file is written atomically anyway)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:                      # not the main thread
        previous = None
    try:
        model.save(path)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)

    import pyblasnn
    from pyblasnn import callbacks, layers, optimizers

    world = None
    if args.distributed:
        from pyblasnn import distributed
        world = distributed.init(threads="auto" if args.threads is None else None)
    say = print if world is None or world.is_root else (lambda *a, **k: None)
    if args.threads is not None:
        try:
            pyblasnn.set_num_threads(args.threads)
        except (TypeError, ValueError) as exc:
            parser.error(f"--threads {args.threads}: {exc}")
    lr = args.learning_rate if args.learning_rate is not None else DEFAULT_LR[args.optimizer]
    momentum = args.momentum if args.momentum is not None else DEFAULT_MOMENTUM[args.optimizer]
    try:
        if args.optimizer == "sgd":
            optimizer = optimizers.SGD(learning_rate=lr, momentum=momentum)
        else:
            optimizer = optimizers.RMSprop(learning_rate=lr, momentum=momentum)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))

    try:
        (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset)
    except (OSError, ValueError) as exc:
        print(f"pyblasnn: cannot load {args.dataset}: {exc}", file=sys.stderr)
        return 1
    if args.train_samples is not None:
        x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]

    done_epochs, extra = 0, []
    if args.checkpoint and os.path.exists(args.checkpoint):
        try:
            model, done_epochs = _resume(args, x_train.shape[0])
        except (OSError, ValueError) as exc:
            print(f"pyblasnn: cannot resume from {args.checkpoint}: {exc}", file=sys.stderr)
            return 1
        optimizer = model.optimizer
        say(f"resuming from {args.checkpoint}: {done_epochs} of {args.epochs} epochs done, "
            f"{optimizer.iterations} steps", flush=True)
    else:
        model = pyblasnn.Sequential([layers.Dense(512, activation="relu"),
                                     layers.Dense(10, activation="softmax")])
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    if args.checkpoint:
        extra.append(callbacks.ModelCheckpoint(args.checkpoint))
    ranks = "" if world is None else f"; {world.size} MPI ranks, global batch split"
    say(f"pyblasnn {pyblasnn.__version__}: {args.dataset}, {x_train.shape[0]} train / "
        f"{x_test.shape[0]} test images; Dense(512, relu) -> Dense(10, softmax); "
        f"{optimizer!r}; batch {args.batch_size}; {pyblasnn.get_num_threads()} threads"
        f"{' per rank' if world is not None else ''}{ranks}", flush=True)

    start = time.perf_counter()
    seed = args.seed
    if seed < 0:                            # drawn once; with MPI, rank 0's for every rank
        import numpy as np
        seed = int(np.random.SeedSequence().generate_state(1)[0])
        seed = world.bcast(seed) if world is not None else seed
    try:
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            verbose=args.verbose, seed=seed, callbacks=extra,
                            initial_epoch=done_epochs, distributed=world is not None)
    except KeyboardInterrupt:
        return _interrupted(model, args)
    except FloatingPointError as exc:       # NonFiniteLossError: nan / inf loss
        print(f"pyblasnn: {exc}", file=sys.stderr)
        return 1
    train_seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=args.batch_size,
                                         verbose=0, distributed=world is not None)
    per_epoch = train_seconds / max(1, args.epochs - done_epochs)
    say(f"test accuracy: {test_acc:.4f}  test loss: {test_loss:.4f}")
    say(f"seconds per epoch: {per_epoch:.2f}  samples per second: "
        f"{x_train.shape[0] / per_epoch:,.0f}")
    if args.save:
        try:
            _save(model, args.save)
        except OSError as exc:
            print(f"pyblasnn: cannot save the model to {args.save}: {exc}", file=sys.stderr)
            return 1
        say(f"saved model to {args.save}")
    if args.plot and (world is None or world.is_root):
        from .plot import write_report_figures
        try:
            paths = write_report_figures(model, history, x_test, y_test, args.plot,
                                         batch_size=1000)
        except OSError as exc:
            print(f"pyblasnn: cannot write the figures into {args.plot}: {exc}",
                  file=sys.stderr)
            return 1
        print("saved figures: " + ", ".join(paths))
    return 0


def _resume(args, n_train):
    """(model, epochs done) from the --checkpoint file: the epochs are its optimizer steps
    over the steps per epoch of this data and batch size (which must divide them)."""
    from pyblasnn.models import load_model
    model = load_model(args.checkpoint)
    steps = -(-n_train // args.batch_size)
    done, rest = divmod(model.optimizer.iterations, steps)
    if rest or done > args.epochs:
        raise ValueError(f"it holds {model.optimizer.iterations} optimizer steps, not a whole "
                         f"number (<= --epochs {args.epochs}) of epochs of {steps} steps of "
                         f"batch {args.batch_size} over {n_train} images")
    return model, done


def _interrupted(model, args):
    """Ctrl-C in fit: the model holds its last completed step; save it if asked, say so."""
    if args.verbose == 1:
        print(flush=True)                   # end the progress bar's line
    steps = model.optimizer.iterations
    history = getattr(model, "history", None)
    epochs = len(history.epoch) if history is not None else 0
    done = (f"interrupted after {steps} training step{'s' if steps != 1 else ''} "
            f"({epochs} of {args.epochs} epochs complete)")
    if not args.save:
        print(f"pyblasnn: {done}; nothing saved (no --save)", file=sys.stderr)
    elif steps == 0 and not model.built:
        print(f"pyblasnn: {done}; nothing to save", file=sys.stderr)
    else:
        try:
            _save(model, args.save)
        except OSError as exc:
            print(f"pyblasnn: {done}; cannot save the model to {args.save}: {exc}",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"pyblasnn: {done}; saved the model as of step {steps} to {args.save}",
              file=sys.stderr)
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

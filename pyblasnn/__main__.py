"""``python -m pyblasnn``: train the book's MNIST network (Deep Learning with Python, ch. 2).

    Dense(512, relu) -> Dense(10, softmax), sparse categorical cross-entropy, 5 epochs of
    batch 128; prints Keras-style progress, then test accuracy, seconds per epoch and
    training samples per second.

The default optimizer is SGD(learning_rate=0.1, momentum=0.9): on MNIST it reaches test
accuracy >= 0.978 in 5 epochs, like the book's RMSprop (learning_rate=0.001) but at the same
cost per step and with fewer epochs to get there.

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
    if args.save is not None:               # found out now, not after the training run
        folder = os.path.dirname(os.path.abspath(args.save))
        if os.path.isdir(args.save):
            parser.error(f"--save {args.save}: is a directory; give a file path")
        if not os.path.isdir(folder):
            parser.error(f"--save {args.save}: the directory {folder} does not exist")
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
    from pyblasnn import layers, optimizers

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

    model = pyblasnn.Sequential([layers.Dense(512, activation="relu"),
                                 layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    print(f"pyblasnn {pyblasnn.__version__}: {args.dataset}, {x_train.shape[0]} train / "
          f"{x_test.shape[0]} test images; Dense(512, relu) -> Dense(10, softmax); "
          f"{optimizer!r}; batch {args.batch_size}; {pyblasnn.get_num_threads()} threads",
          flush=True)

    start = time.perf_counter()
    try:
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            verbose=args.verbose, seed=None if args.seed < 0 else args.seed)
    except KeyboardInterrupt:
        return _interrupted(model, args)
    except FloatingPointError as exc:       # NonFiniteLossError: nan / inf loss
        print(f"pyblasnn: {exc}", file=sys.stderr)
        return 1
    train_seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=args.batch_size,
                                         verbose=0)
    per_epoch = train_seconds / args.epochs
    print(f"test accuracy: {test_acc:.4f}  test loss: {test_loss:.4f}")
    print(f"seconds per epoch: {per_epoch:.2f}  samples per second: "
          f"{x_train.shape[0] / per_epoch:,.0f}")
    if args.save:
        try:
            _save(model, args.save)
        except OSError as exc:
            print(f"pyblasnn: cannot save the model to {args.save}: {exc}", file=sys.stderr)
            return 1
        print(f"saved model to {args.save}")
    if args.plot:
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

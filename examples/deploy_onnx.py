"""Deploy a trained minidl model with ONNX: export the digits CNN and serve it with ONNX Runtime.

What it shows: ``minidl.onnx.export`` writes the model (its ops and its weights) as one ONNX file,
with a symbolic batch size, and any ONNX runtime then computes the same thing without minidl.
The script trains the MNIST-style CNN of ``train_digits.py`` for a few epochs (or loads the
checkpoint ``train_digits.py`` saved, ``runs/train_digits/best.safetensors``, when it exists),
exports it, runs the test digits through both engines, and prints how often they agree, how far
apart their logits are, and the time per image of each (batched and one image at a time).

Serving the file takes a few lines and only ``pip install onnxruntime`` (no minidl)::

    import onnxruntime
    session = onnxruntime.InferenceSession("digits_cnn.onnx", providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images})   # images: (N, 1, 8, 8) float32 in [0, 1]
    digits = logits.argmax(axis=1)

Run::

    python examples/deploy_onnx.py             # train 5 epochs (or load the checkpoint), export
    python examples/deploy_onnx.py --quick     # 3 epochs on 600 images: checks that it runs

Needs ``pip install "minidl[onnx,data]"``; writes ``digits_cnn.onnx`` into ``--out``.
"""
from __future__ import annotations

import os
import pathlib
import time

import numpy as np
from _common import make_parser, prepare
from train_digits import build_cnn

import minidl
import minidl.onnx
from minidl import nn
from minidl.datasets import load_digits, train_test_split
from minidl.train import fit

SERVING = '''    import onnxruntime
    session = onnxruntime.InferenceSession("{path}", providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {{"images": images}})  # (N, 1, 8, 8) float32 -> (N, 10)
    digits = logits.argmax(axis=1)'''


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise SystemExit('this example needs ONNX Runtime: pip install "minidl[onnx]"') from None
    return onnxruntime


def trained_cnn(args, x_train, y_train) -> tuple:
    """The digits CNN: train_digits.py's best checkpoint when there is one (not with --quick),
    else trained here for ``args.epochs`` epochs. Returns (model, per-epoch losses)."""
    model = build_cnn()
    checkpoint = pathlib.Path(args.checkpoint)
    if checkpoint.exists() and not args.quick:
        model.load_state_dict(minidl.load(str(checkpoint))["model"])
        print(f"loaded {checkpoint}")
        return model, []
    if args.quick:
        x_train, y_train = x_train[:600], y_train[:600]
    optimizer = minidl.optim.Adam(model.parameters(), lr=2e-3)
    history = fit(model, (x_train, y_train), nn.CrossEntropyLoss(), optimizer, epochs=args.epochs,
                  batch_size=64, verbose=0)
    print("trained: per-epoch loss " + ", ".join(f"{loss:.4f}" for loss in history["loss"]))
    return model, history["loss"]


def ms_per_image(run, images: np.ndarray, repeats: int, one_at_a_time: bool) -> float:
    """Median over ``repeats`` of the wall time per image: the whole batch in one call, or each
    image alone (the latency a server answering one request at a time sees)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if one_at_a_time:
            for index in range(len(images)):
                run(images[index:index + 1])
        else:
            run(images)
        times.append((time.perf_counter() - start) / len(images))
    return 1000 * float(np.median(times))


def time_both(engines: dict, images: np.ndarray, quick: bool) -> dict:
    """ms per image of each engine, batched (all test images) and one image at a time."""
    repeats, singles = (2, 20) if quick else (5, 200)
    timings = {}
    for name, run in engines.items():
        timings[f"{name}_ms_per_image"] = ms_per_image(run, images, repeats, False)
        timings[f"{name}_ms_per_image_one_at_a_time"] = ms_per_image(run, images[:singles],
                                                                     repeats, True)
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "OpenBLAS's default")
    print(f"time per image, {len(images)} in one batch: minidl "
          f"{timings['minidl_ms_per_image']:.4f} ms, ONNX Runtime "
          f"{timings['onnxruntime_ms_per_image']:.4f} ms")
    print(f"time per image, one at a time: minidl "
          f"{timings['minidl_ms_per_image_one_at_a_time']:.3f} ms, ONNX Runtime "
          f"{timings['onnxruntime_ms_per_image_one_at_a_time']:.3f} ms (minidl's BLAS threads: "
          f"{blas})")
    return timings


def open_session(onnxruntime, path, threads: int):
    """What a server does once at start-up: load the file into an inference session."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="deploy_onnx", epochs=5)
    parser.add_argument("--checkpoint", default=os.path.join("runs", "train_digits",
                                                             "best.safetensors"),
                        help="train_digits.py's checkpoint, used when it exists")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime's threads")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 3
    out = prepare(args)
    onnxruntime = import_onnxruntime()

    images, labels = load_digits()  # (1797, 1, 8, 8) float32 in [0, 1], (1797,) int64
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2)
    model, losses = trained_cnn(args, x_train, y_train)
    model.eval()

    path = out / "digits_cnn.onnx"
    minidl.onnx.export(model, minidl.tensor(x_test[:2]), path, input_names=["images"],
                       output_names=["logits"], dynamic_axes={"images": {0: "batch"}})
    print(f"exported {path} ({path.stat().st_size / 1024:.0f} KiB), batch size symbolic")
    session = open_session(onnxruntime, path, args.threads)

    def run_onnx(batch):
        return session.run(None, {"images": batch})[0]  # (N, 10) logits

    def run_minidl(batch):
        with minidl.no_grad():
            return model(minidl.tensor(batch)).numpy()  # (N, 10) logits

    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    reference, served = run_minidl(x_test), run_onnx(x_test)
    agreement = float((reference.argmax(1) == served.argmax(1)).mean())
    difference = float(np.abs(reference - served).max())
    accuracy = float((served.argmax(1) == y_test).mean())
    print(f"{len(x_test)} test digits: ONNX Runtime's prediction = minidl's for "
          f"{100 * agreement:.1f}%, max |logit difference| {difference:.2e}, accuracy "
          f"{100 * accuracy:.2f}%; ONNX Runtime on {args.threads} thread(s)")
    timings = time_both({"minidl": run_minidl, "onnxruntime": run_onnx}, x_test, args.quick)
    print("serve it (pip install onnxruntime; no minidl needed):")
    print(SERVING.format(path=path))
    return {"losses": losses, "test_accuracy": accuracy, "agreement": agreement,
            "max_abs_difference": difference, **timings}


if __name__ == "__main__":
    main()

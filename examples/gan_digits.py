"""A GAN that draws hand-written digits (the bundled UCI 8x8 digits), through the low-level loop.

The generator G maps noise z to 64 pixels in [-1, 1]; the discriminator D gives the probability
that an image is real. Each step, with binary cross-entropy as both losses:

1. D's loss: real images labelled 0.9 (one-sided label smoothing keeps D from getting
   over-confident) and G's images labelled 0. Two forward/backward passes through D add up in
   D.grads (backward accumulates), then D's optimizer steps.
2. G's loss: G's images through D labelled 1 ("fool D"). D.backward turns dL/d(D's output) into
   dL/d(D's input) -- the gradient with respect to the fake images -- which G.backward carries
   on into G's weights. D's weights are not stepped here; the gradients this pass left in D.grads
   are wiped by D.zero_grad() so they never reach D's optimizer.
Both are plain Dense stacks, each with its own Adam(learning_rate=1e-3, beta1=0.5); with
``--conv``, a DCGAN: G grows its images with strided Conv2DTranspose layers (2x2 -> 4x4 -> 8x8)
and D reads them with strided Conv2D layers.

How good are the digits? A small classifier trained on the real digits labels 500 samples: the
number of classes it finds (mode coverage) and its mean top probability (confidence).
Run: python examples/gan_digits.py [--steps N] [--out digits_gan.png] [--seed S] [--conv]
(about 20 s)
"""

import argparse
import time

import numpy as np

import fastnn as fnn
from fastnn.datasets import load_digits

NOISE = 32


def build(seed, conv=False):
    if conv:                # a DCGAN: G grows 2x2 -> 4x4 -> 8x8, D shrinks 8x8 -> 4x4 -> 2x2
        G = fnn.Sequential([
            fnn.Dense(2 * 2 * 64, activation="relu"), fnn.Reshape((2, 2, 64)),
            fnn.Conv2DTranspose(32, 4, strides=2, padding="same", activation="relu"),
            fnn.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh"),
            fnn.Flatten()], input_dim=NOISE, seed=seed)
        D = fnn.Sequential([
            fnn.Reshape((8, 8, 1)),
            fnn.Conv2D(32, 3, strides=2, padding="same", activation=fnn.LeakyReLU(0.2)),
            fnn.Conv2D(64, 3, strides=2, padding="same", activation=fnn.LeakyReLU(0.2)),
            fnn.Flatten(), fnn.Dense(1, activation="sigmoid")], input_dim=64, seed=seed + 1)
        return G, D
    G = fnn.Sequential([fnn.Dense(256, activation="relu"), fnn.Dense(256, activation="relu"),
                        fnn.Dense(64, activation="tanh")], input_dim=NOISE, seed=seed)
    D = fnn.Sequential([fnn.Dense(256, activation=fnn.LeakyReLU(0.2)),
                        fnn.Dense(256, activation=fnn.LeakyReLU(0.2)),
                        fnn.Dense(1, activation="sigmoid")], input_dim=64, seed=seed + 1)
    return G, D


def train(X, steps, seed, batch=64, lr=1e-3, smooth=0.9, conv=False):
    """Train G and D on images X scaled to [-1, 1]; returns the generator."""
    rng = np.random.default_rng(seed)
    G, D = build(seed, conv)
    opt_g, opt_d = fnn.Adam(learning_rate=lr, beta1=0.5), fnn.Adam(learning_rate=lr, beta1=0.5)
    bce = fnn.losses.get("binary_crossentropy")
    real_label = np.full((batch, 1), smooth, np.float32)
    ones, zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
    for _ in range(steps):
        real = X[rng.integers(0, len(X), batch)]
        fake = G(rng.standard_normal((batch, NOISE)).astype(np.float32))   # inference only
        # 1. D: real -> 0.9, fake -> 0; the two backward passes add up in D.grads
        D.zero_grad()
        for x, label in ((real, real_label), (fake, zeros)):
            _, dout = bce.value_and_grad(label, D.forward(x, training=True))
            D.backward(dout)
        opt_d.step(D)
        # 2. G: make D say 1. The gradient runs back through D (weights untouched) into G.
        z = rng.standard_normal((batch, NOISE)).astype(np.float32)
        _, dout = bce.value_and_grad(ones, D.forward(G.forward(z, training=True), training=True))
        G.zero_grad()
        G.backward(D.backward(dout))   # D.backward -> dL/d(fake images) -> into G's grads
        opt_g.step(G)                  # only G moves ...
        D.zero_grad()                  # ... and D forgets the gradients of this pass
    return G


def judge(X01, y, samples01, seed):
    """(classes found, mean confidence) of a 64-128-10 classifier on the samples (all in [0, 1])."""
    clf = fnn.Sequential([fnn.Dense(128, activation="relu"), fnn.Dense(10, activation="softmax")],
                         input_dim=64, seed=seed)
    clf.compile(loss="cross_entropy", optimizer=fnn.Adam(learning_rate=1e-3))
    clf.fit(X01, y, epochs=30, batch_size=32, verbose=0)
    proba = clf.predict(samples01)
    return len(set(proba.argmax(axis=1).tolist())), float(proba.max(axis=1).mean())


def save_grid(images01, out):
    """A 10x10 grid of 8x8 images as a PNG; as .npy if matplotlib is missing. Returns the path."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out = out.rsplit(".", 1)[0] + ".npy"
        print(f"matplotlib is not installed: saving the samples as {out} instead")
        np.save(out, images01.reshape(-1, 8, 8))
        return out
    cells = np.pad(images01[:100].reshape(10, 10, 8, 8), ((0, 0), (0, 0), (1, 1), (1, 1)))
    grid = cells.transpose(0, 2, 1, 3).reshape(100, 100)          # 10 rows of 10 digits
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_axis_off()
    fig.savefig(out, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return out


def main(steps=8000, out="digits_gan.png", seed=0, conv=False):
    X, y = load_digits()
    X01 = (X / 16.0).astype(np.float32)
    start = time.perf_counter()
    G = train(X01 * 2 - 1, steps, seed, conv=conv)
    seconds = time.perf_counter() - start
    z = np.random.default_rng(seed + 100).standard_normal((500, NOISE)).astype(np.float32)
    samples01 = (G(z) + 1) / 2
    classes, confidence = judge(X01, y, samples01, seed)
    path = save_grid(samples01, out)
    print(f"trained {steps} steps in {seconds:.1f} s; classes covered: {classes} of 10; "
          f"mean confidence: {confidence:.2f}; samples: {path}")
    return {"seconds": seconds, "classes": classes, "confidence": confidence, "path": path}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--out", default="digits_gan.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conv", action="store_true",
                        help="a DCGAN: Conv2DTranspose generator, Conv2D discriminator")
    args = parser.parse_args()
    main(args.steps, args.out, args.seed, args.conv)

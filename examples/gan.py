"""A generative adversarial network on the 8-Gaussian ring, trained through the low-level loop.

Two networks play against each other. The generator G turns noise z into points; the
discriminator D gives the probability that a point is real. Each step:

1. D learns to tell real from fake: its loss is binary cross-entropy with label 1 on a batch of
   real points and label 0 on a batch of G's points. Two forward/backward passes through D
   accumulate its gradients (model.backward adds to model.grads), then D's optimizer steps.
2. G learns to fool D: G's points go through D with label 1 (the "non-saturating" loss). The
   gradient flows back through D -- D.backward returns dL/d(input), the gradient with respect
   to the fake points -- and on into G with G.backward; only G's optimizer steps (D's
   gradients from this pass are cleared before D's next step).

The ring of 8 Gaussians (std 0.02, radius 2) is the standard mode-collapse test: a GAN that
covers only a few modes fools D all the same, so the test counts the modes it reaches. Plain
D, judging one point at a time, let G collapse onto 4-6 modes here; so D judges PACKS of two
points (PacGAN, Lin et al. 2018): a pack of two fakes from one mode looks unlike a pack of two
real points, which come from different modes 7 times in 8. The learning rate decays from 1e-3
to 1e-5 so that G's points settle inside the narrow modes.
Run: python examples/gan.py  (about 15 s; prints the modes covered and the sample quality).
"""

import numpy as np

import fastnn as fnn
from fastnn.datasets import make_gaussian_ring

NOISE = 2      # the dimension of z
PACK = 2       # points per discriminator input


def build(seed):
    generator = fnn.Sequential([fnn.Dense(128, activation="relu"),
                                fnn.Dense(128, activation="relu"), fnn.Dense(2)],
                               input_dim=NOISE, seed=seed)
    discriminator = fnn.Sequential([fnn.Dense(128, activation=fnn.LeakyReLU(0.2)),
                                    fnn.Dense(128, activation=fnn.LeakyReLU(0.2)),
                                    fnn.Dense(1, activation="sigmoid")],
                                   input_dim=2 * PACK, seed=seed + 1)
    return generator, discriminator


def train(steps=10000, batch=256, seed=0, lr=(1e-3, 1e-5)):
    """Train G and D; returns the generator."""
    rng = np.random.default_rng(seed)
    G, D = build(seed)
    opt_g = fnn.Adam(learning_rate=lr[0], beta1=0.5)
    opt_d = fnn.Adam(learning_rate=lr[0], beta1=0.5)
    bce = fnn.losses.get("binary_crossentropy")
    packs = batch // PACK
    ones, zeros = np.ones((packs, 1), np.float32), np.zeros((packs, 1), np.float32)
    for step in range(steps):
        opt_g.learning_rate = opt_d.learning_rate = lr[0] * (lr[1] / lr[0]) ** (step / steps)
        real, _ = make_gaussian_ring(batch, seed=seed + 1 + step)
        fake = G(rng.standard_normal((batch, NOISE)))             # inference: no G gradients
        # 1. the discriminator: real packs -> 1, fake packs -> 0; its gradients add up
        D.zero_grad()
        for x, label in ((real, ones), (fake, zeros)):
            _, dout = bce.value_and_grad(label, D.forward(x.reshape(packs, 2 * PACK)))
            D.backward(dout)
        opt_d.step(D)
        # 2. the generator: make D say 1 on its packs
        z = rng.standard_normal((batch, NOISE))
        out = D.forward(G.forward(z).reshape(packs, 2 * PACK))
        _, dout = bce.value_and_grad(ones, out)
        G.zero_grad()
        dfake = D.backward(dout)              # dL/d(fake points), through D's weights
        G.backward(dfake.reshape(batch, 2))   # and on into G's
        opt_g.step(G)                         # only G moves (D.zero_grad comes first next time)
    return G


def evaluate(G, n=2000, seed=123):
    """(modes covered, fraction of samples within 3 std of a mode)."""
    _, centers = make_gaussian_ring(1)
    samples = G(np.random.default_rng(seed).standard_normal((n, NOISE)))
    dist = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=2)
    nearest, close = dist.argmin(axis=1), dist.min(axis=1) < 3 * 0.02
    return len(set(nearest[close])), float(close.mean())


if __name__ == "__main__":
    G = train()
    modes, quality = evaluate(G)
    print(f"modes covered: {modes} of 8; samples within 3 std of a mode: {quality:.0%}")
    assert modes >= 7 and quality >= 0.7, (modes, quality)

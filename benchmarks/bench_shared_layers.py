"""Training step of Siamese models (a shared tower on two inputs): fastnn's train_on_batch
against the same model in PyTorch (one module called twice, SGD), and against fastnn's untied
twin (two towers) to show what summing the shared gradients costs; float32, 1 and 2 threads,
calls alternating, medians. Run: python benchmarks/bench_shared_layers.py [repeats]."""

import sys
import time

import numpy as np
import torch

import fastnn as fnn


def median_times(fns, repeats, clock=time.perf_counter):
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = clock()
            fn()
            times[i].append(clock() - t)
    return [float(np.median(t)) for t in times]


def dense_tower(shared):
    layers = [fnn.Dense(256, activation="relu"), fnn.Dense(128, activation="relu")]
    other = layers if shared else [fnn.Dense(256, activation="relu"),
                                   fnn.Dense(128, activation="relu")]
    return layers, other, (256,)


def conv_tower(shared):
    def make():
        return [fnn.Conv2D(16, 3, activation="relu"), fnn.MaxPooling2D(2), fnn.Flatten(),
                fnn.Dense(64, activation="relu")]
    layers = make()
    return layers, layers if shared else make(), (28, 28, 1)


def fastnn_model(tower, shared):
    one, two, shape = tower(shared)
    a, b = fnn.Input(shape), fnn.Input(shape)
    ha, hb = a, b
    for layer in one:
        ha = layer(ha)
    for layer in two:
        hb = layer(hb)
    gap = fnn.Subtract()([ha, hb])
    out = fnn.Dense(1, activation="sigmoid")(fnn.Multiply()([gap, gap]))
    model = fnn.Model([a, b], out, seed=0)
    model.compile(loss="binary_crossentropy", optimizer=fnn.SGD(lr=0.01))
    return model, shape


class TorchSiamese(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        if kind == "dense":
            self.tower = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                             torch.nn.Linear(256, 128), torch.nn.ReLU())
            width = 128
        else:
            self.tower = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(),
                                             torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                             torch.nn.Linear(16 * 13 * 13, 64), torch.nn.ReLU())
            width = 64
        self.head = torch.nn.Linear(width, 1)

    def forward(self, a, b):
        gap = self.tower(a) - self.tower(b)
        return torch.sigmoid(self.head(gap * gap))


def cases(kind, batch=128):
    tower = dense_tower if kind == "dense" else conv_tower
    shared, shape = fastnn_model(tower, True)
    untied, _ = fastnn_model(tower, False)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(batch, *shape)).astype(np.float32) for _ in range(2)]
    t = rng.integers(0, 2, size=(batch, 1)).astype(np.float32)
    net = TorchSiamese(kind)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    perm = (lambda v: v) if kind == "dense" else (lambda v: v.permute(0, 3, 1, 2).contiguous())
    ta, tb = (perm(torch.tensor(x)) for x in xs)
    tt = torch.tensor(t)

    def torch_step():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(net(ta, tb), tt)
        loss.backward()
        opt.step()
    return [lambda: shared.train_on_batch(xs, t), lambda: untied.train_on_batch(xs, t),
            torch_step]


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with open("/proc/loadavg") as f:
        print("load average:", " ".join(f.read().split()[:3]))
    # wall-clock medians; at 1 thread also the process's CPU time per step, which a busy
    # machine's preemptions do not inflate (at 2 threads it adds the threads' times)
    print(f"{'model':6s} {'threads':>7s} {'clock':>5s} {'fastnn shared ms':>17s} "
          f"{'untied ms':>10s} {'torch ms':>9s} {'torch/shared':>13s} {'untied/shared':>14s}")
    for kind in ("dense", "conv"):
        for threads in (1, 2):
            fnn.set_num_threads(threads)
            torch.set_num_threads(threads)
            fns = cases(kind)
            for fn in fns:          # warm up
                fn()
            clocks = [("wall", time.perf_counter)]
            if threads == 1:
                clocks.append(("cpu", time.process_time))
            for label, clock in clocks:
                shared, untied, theirs = median_times(fns, repeats, clock)
                print(f"{kind:6s} {threads:7d} {label:>5s} {shared * 1e3:17.3f} "
                      f"{untied * 1e3:10.3f} {theirs * 1e3:9.3f} {theirs / shared:13.2f} "
                      f"{untied / shared:14.2f}")


if __name__ == "__main__":
    main()

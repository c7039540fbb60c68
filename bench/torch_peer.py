"""PyTorch peer for bench/train.ts: the reference model on the same shapes, one thread.

Run by the TypeScript bench through child_process with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1; its only
argument is a JSON object of sizes. Prints one JSON object on its last line, with wall-clock and CPU-time
figures (CPU time is what a busy machine distorts least). Installs nothing: exits with status 3 when torch is
absent.
"""
import json
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"error": "torch is not importable"}))
    sys.exit(3)


def blas_in_use():
    """Debian's torch calls whatever libblas.so.3 the alternatives point at: name it, since it sets the speed."""
    try:
        with open("/proc/self/maps") as maps:
            text = maps.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "blis", "mkl", "atlas"):
        if name in text:
            return name
    return "reference" if "libblas" in text else "unknown"


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed(fn, calls):
    """Median wall-clock and CPU seconds of one call."""
    walls, cpus = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return median(walls), median(cpus)


def main():
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    n = args.get("n", 4096)
    steps = args.get("steps", 24)
    features = args.get("features", 7)
    horizon = args.get("horizon", 24)
    units = args.get("units", 32)
    batch = args.get("batch", 64)
    epochs = args.get("epochs", 3)
    predict_calls = args.get("predictCalls", 300)
    torch.set_num_threads(1)
    torch.manual_seed(1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = torch.nn.LSTM(features, units, batch_first=True)
            self.lstm2 = torch.nn.LSTM(units, units, batch_first=True)
            self.dense = torch.nn.Linear(units, horizon)

        def forward(self, x):
            sequence, _ = self.lstm1(x)
            _, (h, _) = self.lstm2(sequence)
            return self.dense(h[-1])

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    xs = torch.randn(n, steps, features)
    ys = torch.randn(n, horizon)

    def epoch():
        order = torch.randperm(n)
        start, start_cpu = time.perf_counter(), time.process_time()
        for first in range(0, n, batch):
            index = order[first:first + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(xs[index]), ys[index])
            loss.backward()
            optimizer.step()
            loss.item()
        return time.perf_counter() - start, time.process_time() - start_cpu

    epoch()  # warm-up
    timed_epochs = [epoch() for _ in range(epochs)]
    wall_seconds = median([wall for wall, _ in timed_epochs])
    cpu_seconds = median([cpu for _, cpu in timed_epochs])

    model.eval()
    with torch.no_grad():
        one = xs[:1]
        for _ in range(20):
            model(one)
        b1_wall, b1_cpu = timed(lambda: model(one), predict_calls)
        many = xs[:256]
        model(many)
        b256_wall, b256_cpu = timed(lambda: model(many), 10)

    print(json.dumps({
        "torch": torch.__version__,
        "blas": blas_in_use(),
        "threads": torch.get_num_threads(),
        "train_sps": n / wall_seconds,
        "train_cpu_sps": n / cpu_seconds,
        "b1_ms": b1_wall * 1000,
        "b1_cpu_ms": b1_cpu * 1000,
        "b256_wps": len(many) / b256_wall,
        "b256_cpu_wps": len(many) / b256_cpu,
    }))


main()

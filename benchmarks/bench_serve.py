"""Serving load benchmark: N concurrent clients x M requests each, on loopback.

    python benchmarks/bench_serve.py                            # starts `embodia serve --preset tiny`
    python benchmarks/bench_serve.py --clients 1 4 8 --requests 50
    python benchmarks/bench_serve.py --url ws://127.0.0.1:8000  # an already running server

The server runs as its own process (the real `embodia serve` command), so the clients' encoding
and socket work does not share a GIL with inference. Each client is a thread with its own
connection sending full observations (two 128 px RGB views, state, prompt) and checking every
reply's shape; a failure is any exception, error reply or wrongly shaped chunk. Latency is the
client's round trip (encode, send, queue, inference, reply, decode); the server's own
``infer_ms`` / ``queue_ms`` are reported beside it. Inference is one request at a time by design
(see embodia.serving.server), so with N clients the round trip grows ~N x while requests/s
stays at the single-model rate.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import threading
import time

import numpy as np

from embodia.serving.client import PolicyClient


def observation(rng: np.random.Generator, cameras: list[str], dof: int, size: int) -> dict:
    return {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cameras},
        "state": np.array([0.0, 0.6, 0.2, 0.5][:dof] + [0.0] * max(0, dof - 4), np.float32),
        "prompt": "put the puck on the goal",
    }


def client_loop(url, api_key, requests, warmup, size, barrier, results, k) -> None:
    rng = np.random.default_rng(k)
    lat, infer, queue, failures = [], [], [], []
    try:
        with PolicyClient(url, None, api_key=api_key, timeout=120) as c:
            m = c.metadata
            shape = tuple(m["action_shape"])
            for _ in range(warmup):
                c.infer(observation(rng, m["cameras"], m["state_dim"], size))
            barrier.wait()
            for _ in range(requests):
                obs = observation(rng, m["cameras"], m["state_dim"], size)
                start = time.perf_counter()
                try:
                    reply = c.infer(obs)
                except Exception as exc:
                    failures.append(repr(exc))
                    continue
                lat.append(time.perf_counter() - start)
                if reply["actions"].shape != shape or not np.isfinite(reply["actions"]).all():
                    failures.append(f"bad chunk {reply['actions'].shape}")
                infer.append(reply["server_timing"]["infer_ms"])
                queue.append(reply["server_timing"]["queue_ms"])
    except Exception as exc:
        failures.append(f"client {k}: {exc!r}")
        barrier.abort()
    results[k] = (lat, infer, queue, failures)


def run_load(url, api_key, n_clients, requests, warmup, size) -> dict:
    results: dict = {}
    barrier = threading.Barrier(n_clients + 1)
    threads = [
        threading.Thread(
            target=client_loop,
            args=(url, api_key, requests, warmup, size, barrier, results, k),
        )
        for k in range(n_clients)
    ]
    for t in threads:
        t.start()
    barrier.wait()  # all connected and warmed up: start the clock
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array([x for r in results.values() for x in r[0]]) * 1000
    infer = np.array([x for r in results.values() for x in r[1]])
    queue = np.array([x for r in results.values() for x in r[2]])
    failures = [f for r in results.values() for f in r[3]]
    return {
        "clients": n_clients,
        "requests": n_clients * requests,
        "ok": len(lat),
        "failures": failures,
        "wall_s": wall,
        "rps": len(lat) / wall,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "infer_p50": float(np.median(infer)) if len(infer) else float("nan"),
        "queue_p50": float(np.median(queue)) if len(queue) else float("nan"),
    }


def start_server(
    preset: str | None, threads: int | None, checkpoint: str | None = None
) -> tuple[subprocess.Popen, str]:
    """`embodia serve` on a random port (a checkpoint, else a preset's random weights)."""
    source = ["--checkpoint", str(checkpoint)] if checkpoint else ["--preset", preset]
    cmd = [sys.executable, "-m", "embodia.cli", "serve", *source, "--port", "0"]
    cmd += ["--log-level", "warning"] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.search(r" on (ws://[\d.]+:\d+)", line)
        if m:
            return proc, m.group(1)
    proc.wait()
    raise RuntimeError(f"server exited with {proc.returncode} before listening")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, default=50, help="per client")
    ap.add_argument("--warmup", type=int, default=2, help="uncounted requests per client")
    ap.add_argument("--image-size", type=int, default=128, help="side of the RGB views sent")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--threads", type=int, default=None, help="server torch threads")
    ap.add_argument("--url", default=None, help="bench this server instead of starting one")
    ap.add_argument("--api-key", default=os.environ.get("EMBODIA_API_KEY"))
    args = ap.parse_args()

    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.preset, args.threads)
    try:
        print(f"$ python {' '.join(shlex.quote(a) for a in sys.argv)}")
        print(
            f"server {url}  preset {args.preset}  CPUs {os.cpu_count()}  load avg "
            f"{os.getloadavg()[0]:.2f}  views 2 x {args.image_size} px"
        )
        print(
            f"{'clients':>7} {'requests':>8} {'failures':>8} {'req/s':>7} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'max ms':>8} {'infer p50':>9} {'queue p50':>9}"
        )
        failed = 0
        for n in args.clients:
            r = run_load(url, args.api_key, n, args.requests, args.warmup, args.image_size)
            failed += len(r["failures"])
            print(
                f"{r['clients']:>7} {r['requests']:>8} {len(r['failures']):>8} {r['rps']:>7.1f} "
                f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {r['infer_p50']:>9.1f} "
                f"{r['queue_p50']:>9.1f}"
            )
            for f in r["failures"][:5]:
                print(f"  failure: {f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

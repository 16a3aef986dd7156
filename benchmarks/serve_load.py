"""A bounded load test of the served model: 4 concurrent clients × 50 requests of one article each.

    python benchmarks/serve_load.py --model runs:/<run_id>/model [--clients 4] [--requests 50]
    python benchmarks/serve_load.py --server app --model models/default

Starts `mlflow models serve` (or, with `--server app`, `security-topics serve` and its
POST /v1/articles) on 127.0.0.1 (local environment, the project's MLflow store unless
MLFLOW_TRACKING_URI says otherwise), waits for it, runs the clients, prints errors and latency
percentiles, and stops the server. Loopback only.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from security_topics.tracking import resolve_uri

ARTICLE = {
    "title": "ضبط شحنة كبتاجون في ميناء جدة",
    "text": "جدة - واس: أعلنت المديرية العامة لمكافحة المخدرات ضبط 3.5 مليون قرص كبتاجون مخبأة في شحنة فواكه. "
    "وقال المتحدث باسم المديرية إن المهربين حاولوا إدخال الشحنة عبر الميناء. "
    "وفي سياق منفصل، ارتفعت أسعار النفط في الأسواق العالمية.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--server", choices=("mlflow", "app"), default="mlflow", help="mlflow serve or ours")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": resolve_uri()}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # uvicorn
    bin_dir = Path(sys.executable).parent
    if args.server == "mlflow":
        command = [bin_dir / "mlflow", "models", "serve", "-m", args.model, "--env-manager", "local"]
        command += ["-h", "127.0.0.1", "-p", str(port)]
        health, path, payload = "/ping", "/invocations", {"dataframe_records": [ARTICLE]}
    else:
        command = [bin_dir / "security-topics", "-q", "serve", "--model", args.model, "--port", str(port)]
        health, path, payload = "/healthz", "/v1/articles", [{"id": "a", **ARTICLE}]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    payload = json.dumps(payload, ensure_ascii=False).encode()
    answer_key = "predictions" if args.server == "mlflow" else "results"
    try:
        started = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(url + health, timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit("the server did not start") from None
                time.sleep(1)
        print(f"server up in {time.monotonic() - started:.1f} s")

        def client(_: int) -> list[float | None]:
            latencies: list[float | None] = []
            for _ in range(args.requests):
                request = urllib.request.Request(url + path, data=payload, headers={"Content-Type": "application/json"})
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        ok = response.status == 200 and json.loads(response.read())[answer_key][0]["topics"]
                    latencies.append(time.perf_counter() - t0 if ok else None)
                except OSError:
                    latencies.append(None)
            return latencies

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = [x for batch in pool.map(client, range(args.clients)) for x in batch]
        wall = time.perf_counter() - t0
        good = sorted(x for x in results if x is not None)
        errors = len(results) - len(good)
        q = statistics.quantiles(good, n=100) if len(good) > 1 else [good[0]] * 99
        print(
            f"{len(results)} requests ({args.clients} clients × {args.requests}): {errors} errors, "
            f"p50 {1000 * statistics.median(good):.0f} ms, p95 {1000 * q[94]:.0f} ms, "
            f"{len(results) / wall:.1f} requests/s"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

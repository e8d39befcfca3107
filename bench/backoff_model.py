#!/usr/bin/env python3
"""A model of pgentry's wait latency under retry policies, using the costs measured by
bench/breakdown.sh. Use it to compare policies before changing the backoff code.

The model: the server starts listening at a random moment and is ready LISTEN ms later.
A refused attempt (port closed) costs T_REFUSED ms. An attempt during start-up gets 57P03
and costs T_57P03 ms (a backend fork and the error reply). After ready, the successful
attempt costs T_SUCCESS ms (auth + query + exit). Between attempts the delay is drawn
uniformly from [1, min(cap, initial * 2^n)] (full jitter, as in src/backoff.c). The cap is
CAP before the first 57P03 and CAP_STARTING once one has been seen.

Usage: bench/backoff_model.py   prints the median and p95 of (waiter returned - ready) per policy
"""
import random
import statistics

LISTEN = 15.0     # ms the postmaster listens before it is ready (breakdown.sh median)
T_REFUSED = 0.2   # ms for an attempt against a closed port
T_57P03 = 5.0     # ms for an attempt turned away as "starting up"
T_SUCCESS = 10.6  # ms auth 5 + query 4 + exit 1.6 (breakdown.sh medians)
INITIAL = 10.0    # ms, PGE_BACKOFF_INITIAL_MS


def p95(xs):
    xs = sorted(xs)
    pos = (len(xs) - 1) * 0.95
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def simulate(cap, cap_starting, n=20000, seed=1):
    rng = random.Random(seed)
    gaps = []
    for _ in range(n):
        listen = rng.uniform(200, 1200)
        ready = listen + LISTEN
        t, attempt, starting = 0.0, 0, False
        while t < ready:
            if t < listen:
                t += T_REFUSED
            else:
                t += T_57P03
                starting = True
            c = cap_starting if starting else cap
            t += rng.uniform(1, min(c, INITIAL * 2 ** attempt))
            attempt += 1
        gaps.append(t + T_SUCCESS - ready)
    return statistics.median(gaps), p95(gaps)


def main():
    policies = [
        ("now: cap 50 ms", 50, 50),
        ("cap 25 ms", 25, 25),
        ("57P03 -> cap 10 ms", 50, 10),
        ("57P03 -> cap 5 ms", 50, 5),
        ("cap 20 ms + 57P03 -> cap 5 ms", 20, 5),
    ]
    print("%-32s %8s %8s" % ("policy", "median", "p95"))
    for name, cap, cap_starting in policies:
        m, p = simulate(cap, cap_starting)
        print("%-32s %8.1f %8.1f" % (name, m, p))


if __name__ == "__main__":
    main()
